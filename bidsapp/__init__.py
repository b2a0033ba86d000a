"""bidsapp: fMRIPrep derivatives -> clean, documented samples x features arrays."""

import os

# bidsapp never uses the network: stop nipype's version check (etelemetry) before nipype is imported.
os.environ.setdefault("NIPYPE_NO_ET", "1")


def _version() -> str:
    """pyproject.toml is the one source of the version; the installed metadata carries it."""
    from importlib import metadata

    try:
        return metadata.version("bidsapp")
    except metadata.PackageNotFoundError:  # imported from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str):
    """``bidsapp.__version__``, ``bidsapp.load`` and ``bidsapp.dataset``, computed or imported on first use:
    ``import bidsapp`` stays light (the command installs its signal handlers right after it; importlib.metadata
    alone takes ~40 ms)."""
    if name == "__version__":
        globals()[name] = _version()
        return globals()[name]
    if name in ("load", "dataset"):
        import importlib

        value = getattr(importlib.import_module("bidsapp.api"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bidsapp' has no attribute {name!r}")
