"""bidsapp: fMRIPrep derivatives -> clean, documented samples x features arrays."""

import os
from importlib import metadata

try:  # pyproject.toml is the one source of the version; the installed metadata carries it
    __version__ = metadata.version("bidsapp")
except metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

# bidsapp never uses the network: stop nipype's version check (etelemetry) before nipype is imported.
os.environ.setdefault("NIPYPE_NO_ET", "1")


def __getattr__(name: str):
    """``bidsapp.load`` and ``bidsapp.dataset``, imported on first use (``import bidsapp`` stays light)."""
    if name in ("load", "dataset"):
        import importlib

        value = getattr(importlib.import_module("bidsapp.api"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bidsapp' has no attribute {name!r}")
