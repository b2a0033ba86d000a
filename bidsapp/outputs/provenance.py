"""Provenance: software versions, the sources of a run (checksums, BIDS URIs) and GeneratedBy.

Paths in run sidecars are BIDS URIs (the ``Sources`` spelling), never local absolute paths.
"""

from __future__ import annotations

import copy
import functools
import os
import platform
from importlib import metadata
from pathlib import Path

from bidsapp import __version__

#: sidecar fields holding an input file, and the Sources role that names the same file
_PATH_FIELDS = ((("Trials", "EventsFile"), "events"), (("Parameters", "atlas"), "atlas"),
                (("Parameters", "atlas_labels"), "atlas_labels"))


def with_uris(sidecar: dict, sources: list[dict]) -> dict:
    """Copy of ``sidecar`` where every input-file path is replaced by its BIDS URI from ``Sources``.

    A source outside the named datasets (e.g. an atlas given by path) gets a ``file:`` URI.

    Parameters
    ----------
    sidecar : dict
        The run's sidecar (``Trials``, ``Parameters`` ...).
    sources : list of dict
        ``Sources`` entries (``Role``, ``URI``, ``SHA256``), as made by ``derivatives.sources``.

    Raises
    ------
    ValueError
        When a path field is set but no source of that role exists (the provenance would be lost).
    """
    out = copy.deepcopy(sidecar)
    sources = copy.deepcopy(sources)
    for src in sources:  # a file outside the named datasets: a file: URI, not a bare path
        if src["URI"].startswith("/"):
            src["URI"] = Path(src["URI"]).as_uri()
    if "Sources" in out:
        out["Sources"] = sources
    uris = {s["Role"]: s["URI"] for s in sources}
    if str(out.get("TemplateFile") or "").startswith("/"):  # a TemplateFlow file: not in a named dataset
        out["TemplateFile"] = Path(out["TemplateFile"]).as_uri()
    for (section, key), role in _PATH_FIELDS:
        block = out.get(section)
        if not isinstance(block, dict) or not block.get(key):
            continue
        if role not in uris:
            raise ValueError(f"sidecar field {section}.{key} = {block[key]!r} has no '{role}' entry in Sources.")
        block[key] = uris[role]
    return out


#: libraries whose version is part of the code fingerprint (their numbers are in the cached results)
FINGERPRINT_LIBRARIES = ("numpy", "scipy", "nibabel", "nipype", "isal")


def code_fingerprint(package: Path | None = None) -> str:
    """SHA-256 of the code that computes a run's numbers (recorded in its sidecar, stamped on a work folder):
    every ``.py`` file of the bidsapp package (path and bytes), the Python version and the versions of
    :data:`FINGERPRINT_LIBRARIES`. About 15 ms (86 files), once per process."""
    import hashlib
    from importlib import metadata

    if package is None:
        return _running_code()
    package = Path(package)
    h = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        h.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(f"python={platform.python_version()}\0".encode())
    for lib in FINGERPRINT_LIBRARIES:
        try:
            h.update(f"{lib}={metadata.version(lib)}\0".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{lib}=none\0".encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _running_code() -> str:
    """:func:`code_fingerprint` of the running package, computed once per process."""
    return code_fingerprint(Path(__file__).resolve().parents[1])


def software_versions() -> dict:
    """Versions of bidsapp, Python and the numerical / workflow stack."""
    out = {"bidsapp": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "scipy", "nibabel", "nipype", "pybids", "templateflow", "isal"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def container_info() -> dict | None:
    """Image name and version when running in the bidsapp container (set in the Dockerfile)."""
    image = os.environ.get("BIDSAPP_CONTAINER_IMAGE")
    if not image:
        return None
    apptainer = os.environ.get("SINGULARITY_CONTAINER") or os.environ.get("APPTAINER_CONTAINER")
    kind = "singularity" if apptainer else "docker"
    return {"Type": kind, "Tag": image}


def source_uri(path: Path, roots: dict[str, Path]) -> str:
    """BIDS URI of an input file (``bids:<dataset>:<path>``), or a ``file://`` URI outside the datasets.


    The path is taken as found, symbolic links not followed (a DataLad/git-annex file is named by its
    place in the dataset, not by its annex object); the innermost dataset containing it wins (the
    fMRIPrep folder inside the raw dataset's ``derivatives/``).
    """
    found = Path(os.path.abspath(path))
    best = None
    for name, root in roots.items():
        root_abs = Path(os.path.abspath(root))
        if root_abs == found or root_abs in found.parents:
            if best is None or len(root_abs.parts) > len(best[1].parts):
                best = (name, root_abs)
    if best is not None:
        return f"bids:{best[0]}:{found.relative_to(best[1]).as_posix()}"
    return found.as_uri()


def sources(files: dict[str, Path | None], roots: dict[str, Path], cache=None, workers: int = 4) -> list[dict]:
    """``Sources`` entries: role, BIDS URI and SHA-256 of each input file (``cache``: a ChecksumCache)."""
    from bidsapp.outputs.checksums import ChecksumCache


    cache = cache or ChecksumCache(None)
    present = [(role, Path(path)) for role, path in files.items() if path is not None]
    digests = cache.many([p for _, p in present], workers=workers)
    return [{"Role": role, "URI": source_uri(path, roots), "SHA256": digest}
            for (role, path), digest in zip(present, digests)]


def generated_by() -> dict:
    entry = {"Name": "bidsapp", "Version": __version__, "CodeURL": "https://github.com/bidsapp/bidsapp",
             "Description": "masked, cleaned samples x features arrays after fMRIPrep"}
    container = container_info()
    if container:
        entry["Container"] = container
    return entry
