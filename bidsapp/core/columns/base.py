"""The protocol every column space implements: what the columns of a run's array are.

A column space is built once from the run (its BOLD file, its mask and explicit arguments), turns the
run into rows (``transform``), describes its columns (``features``, ``feature_descriptions``), maps a
vector or matrix over the columns back to an image (``inverse``, ``inverse_rows``), and says
what it adds to the sidecar and to each node's memory (which output formats serve it: the writers registry,
:mod:`bidsapp.outputs.writers`). The steps after extraction
rebuild it from the run's outputs (``from_outputs``): nothing else learns the kind from a file name.

The run's temporal mean image (the report's background) comes out of ``transform`` too: given
``mean_out``, a volume kind writes the mean of the unsmoothed volumes it streamed there (float32
(nx, ny, nz) ``.npy``, :func:`streamed_mean`), so no step reads the BOLD again for it; grayordinate kinds
have no mean image and write nothing.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import ClassVar

import numpy as np

from bidsapp.core.files import save_npy
from bidsapp.core.io import MeanAccumulator

PathLike = str | os.PathLike


def coverage_descriptions(what: str) -> dict[str, dict]:
    """Column descriptions of ``coverage`` and ``excluded`` (``--min-coverage``) in a features table."""
    return {
        "coverage": {"Description": f"Fraction of the {what} inside the run's mask (1: fully covered).",
                     "Units": "fraction"},
        "excluded": {"Description": "Why the column is all NaN (n/a: it is not): a coverage below --min-coverage; "
                                    "the column is left out of cleaning and connectivity, never a mean of the few "
                                    "covered voxels."},
    }


@contextlib.contextmanager
def streamed_mean(bold: PathLike, mean_out: PathLike | None) -> Iterator[MeanAccumulator | None]:
    """The accumulator a volume kind's :meth:`ColumnSpace.transform` hands to its stream (``mean=``), and the
    run's temporal mean written at ``mean_out`` (float32 (nx, ny, nz) ``.npy``, atomically) once the stream
    ended without error; ``None`` and nothing written without ``mean_out``.

    Examples
    --------
    >>> with streamed_mean(bold, mean_out) as mean:  # doctest: +SKIP
    ...     n_bad = masking.mask_to_npy(bold, mask, out, mean=mean)
    """
    if mean_out is None:
        yield None
        return
    mean = MeanAccumulator.of(bold)
    yield mean
    save_npy(mean.mean().astype(np.float32, copy=False), mean_out)


class ColumnSpace(ABC):
    """One kind of column. Subclasses set the class attributes and implement the abstract methods.

    Attributes
    ----------
    kind : str
        Recorded in the sidecar as ``ColumnSpace``; the key of :data:`bidsapp.core.columns.KINDS`.
    what : str
        Plural noun for the sidecar's description ("mask voxels", "atlas regions", ...).
    image : tuple of (suffix, extension, desc) or None
        Output name of the columns image (an atlas on the run's grid, spheres, maps); None when the
        mask is the only image the inverse needs.
    mask_extension : str
        Extension of the run's mask output (a NIfTI mask, or a grayordinate run's ``dscalar.nii``).
    on_grayordinates : bool
        Whether columns live on CIFTI / GIFTI grayordinates (no volume mask, no grid).
    column_prefix : str
        Column name in a ``timeseries.tsv.gz`` header when the features table has no ``name``.
    options : tuple of str
        Settings the kind is built from (beyond the atlas options), passed by name to :meth:`claims`,
        :meth:`check_inputs` and :meth:`build`; paths among them are recorded as the run's sources.
    regions : bool
        Whether columns are regions (labels, maps, spheres): they have a coverage (``--min-coverage``) and
        a connectivity matrix (``--connectivity``); voxels and grayordinates have neither.
    """

    kind: ClassVar[str]
    what: ClassVar[str]
    image: ClassVar[tuple[str, str, str | None] | None] = None
    mask_extension: ClassVar[str] = ".nii.gz"
    on_grayordinates: ClassVar[bool] = False
    column_prefix: ClassVar[str] = "voxel"
    options: ClassVar[tuple[str, ...]] = ()
    regions: ClassVar[bool] = False

    @classmethod
    def claims(cls, bold: PathLike, atlas: PathLike | None, **options) -> bool:
        """Whether the run's inputs ask for this kind (kinds with options; see :func:`choose_kind`)."""
        return False

    # -- built from the run (extraction) ------------------------------------------------------------
    @classmethod
    @abstractmethod
    def build(cls, bold: PathLike, mask_file: PathLike, **args) -> ColumnSpace:
        """The column space of one run (reads headers, the mask and the kind's own files)."""

    @abstractmethod
    def transform(self, bold: PathLike, out: PathLike, *, mean_out: PathLike | None = None, **args) -> int:
        """Stream the run into a (n_volumes, n_columns) ``.npy`` at ``out``; returns the number of non-finite
        values set to 0. Memory: the array plus the kind's :meth:`memory_terms`.

        ``mean_out``: volume kinds also write the run's temporal mean there, summed from the same stream
        before any smoothing (float32 (nx, ny, nz) ``.npy``, equal to :func:`bidsapp.core.io.mean_volume`;
        ``streamed_mean``); grayordinate kinds (``on_grayordinates``) ignore it.

        ``digest`` (a ``bidsapp.core.io.ReadDigest``): receives the SHA-256 of the whole ``bold`` file,
        hashed from the bytes the stream reads (so the run's checksum costs no second read); a kind whose
        reader cannot hash (GIFTI pairs, CIFTI files nibabel decodes) leaves it unset."""

    @abstractmethod
    def features(self) -> dict[str, np.ndarray]:
        """The features table: one entry per column of the array."""

    def save_image(self, path: PathLike) -> str | None:
        """Write the columns image (when :attr:`image` is set) at ``path``; returns its path or None."""
        return None

    # -- rebuilt from the outputs (sink, loader) -----------------------------------------------------
    @classmethod
    @abstractmethod
    def from_outputs(cls, mask_file: PathLike, image_file: PathLike | None, features: dict) -> ColumnSpace:
        """The column space of a run's outputs: its mask, its columns image and its features table
        (``features`` maps column names to sequences)."""

    @abstractmethod
    def inverse(self, values) -> object:
        """A vector (n_columns,) or matrix (n, n_columns) over the columns as an image (NIfTI 3D / 4D, or a
        ``dscalar.nii`` for grayordinates)."""

    def inverse_rows(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Volumes of the inverse, one row at a time (bounded memory), for the ``nii.gz`` output."""
        raise ValueError(f"{self.kind} columns have no volume image.")

    @property
    @abstractmethod
    def n_columns(self) -> int:
        """Number of columns."""

    def check_values(self, values) -> np.ndarray:
        """``values`` as an array of shape (n_columns,) or (n, n_columns); booleans as uint8."""
        values = np.asarray(values)
        if values.dtype == bool:
            values = values.astype(np.uint8)
        if values.ndim not in (1, 2) or values.shape[-1] != self.n_columns:
            raise ValueError(f"values of shape {values.shape} do not match the {self.n_columns} columns; give "
                             "(n_features,) or (n, n_features).")
        return values

    # -- descriptions, sidecar, memory ---------------------------------------------------------------
    @staticmethod
    @abstractmethod
    def feature_descriptions() -> dict[str, dict]:
        """BIDS column descriptions of the features table."""

    def sidecar_fields(self) -> dict:
        """Fields of the run's ``_timeseries.json`` (``ColumnSpace`` and the kind's parameters)."""
        return {"ColumnSpace": self.kind}

    @classmethod
    def check_inputs(cls, bold: PathLike, *, atlas: PathLike | None = None, resample: bool = False,
                     mask: PathLike | None = None, **options) -> int:
        """Refuse the kind's bad inputs before the run starts (``ValueError``, one line naming the file and the
        fix); ``mask`` is the run's mask when known before the run (fMRIPrep's). Returns the number of columns
        when the inputs tell it (0 otherwise)."""
        return 0

    @classmethod
    def memory_terms(cls, n_volumes: int, n_columns: int, support_voxels: int) -> dict[str, int]:
        """Bytes each node needs beyond the voxel model of :mod:`bidsapp.execution.memory` (node -> bytes)."""
        return {}
