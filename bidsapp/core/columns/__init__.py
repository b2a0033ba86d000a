"""Column spaces: one module per kind of column (voxels, labels, maps, ROI masks, spheres, grayordinates,
grayordinate labels), one protocol (:class:`~bidsapp.core.columns.base.ColumnSpace`).

:func:`choose_kind` decides a run's kind once, from its inputs; every later step asks
:func:`get` (the class of a kind recorded in the sidecar / passed between nodes).
"""

from __future__ import annotations

from bidsapp.core.columns.base import ColumnSpace, PathLike
from bidsapp.core.columns.grayordinates import GrayordinateLabels, Grayordinates
from bidsapp.core.columns.labels import Labels
from bidsapp.core.columns.maps import Maps
from bidsapp.core.columns.rois import ROIs
from bidsapp.core.columns.spheres import Spheres
from bidsapp.core.columns.voxels import Voxels

KINDS: dict[str, type[ColumnSpace]] = {
    c.kind: c for c in (Voxels, Labels, Maps, ROIs, Spheres, Grayordinates, GrayordinateLabels)}


def get(kind: str) -> type[ColumnSpace]:
    """The column-space class of ``kind`` (as recorded in a sidecar's ``ColumnSpace``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown column space {kind!r}; expected one of {sorted(KINDS)}.")
    return KINDS[kind]


def choose_kind(bold: PathLike, *, atlas: PathLike | None = None, **options) -> str:
    """The kind of columns of a run: from the BOLD file's format and the column options given.

    Parameters
    ----------
    bold : path
        The run's BOLD file (a CIFTI-2 dtseries or GIFTI func file has grayordinates).
    atlas : path, optional
        ``--atlas``: integer labels (3D) or probabilistic maps (4D float).
    **options
        The kinds' own options (:attr:`ColumnSpace.options`), e.g. ``spheres``: the first kind that
        :meth:`~ColumnSpace.claims` them wins.
    """
    from bidsapp.core import grayordinates

    gray = grayordinates.is_grayordinate_file(bold)
    for kind, cls in KINDS.items():
        if cls.claims(bold, atlas, **options):
            return kind
    if atlas is None:
        return "grayordinates" if gray else "voxels"
    if gray:
        return "grayordinate_labels"
    return "labels"


def options_of(settings: object) -> dict:
    """Every kind's own options, read by name from a settings object (None when it has no such field)."""
    return {name: getattr(settings, name, None) for cls in KINDS.values() for name in cls.options}


__all__ = ["ColumnSpace", "KINDS", "choose_kind", "get", "options_of"]
