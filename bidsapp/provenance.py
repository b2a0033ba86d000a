"""Paths in run sidecars as BIDS URIs (the ``Sources`` spelling), never local absolute paths."""

from __future__ import annotations

import copy
from pathlib import Path

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
