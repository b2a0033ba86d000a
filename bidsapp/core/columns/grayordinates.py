"""Grayordinates (CIFTI-2 dtseries / GIFTI pair columns) and atlas labels over them."""

from __future__ import annotations

import numpy as np

from bidsapp.core import grayordinates as go
from bidsapp.core import masking
from bidsapp.core.columns.base import ColumnSpace, PathLike, coverage_descriptions
from bidsapp.core.coverage import count_labels
from bidsapp.core.files import save_npy
from bidsapp.core.io import ReadDigest


def _descriptions() -> dict[str, dict]:
    return {
        "column": {"Description": "Column of _timeseries.npy (0-based)."},
        "structure": {"Description": "CIFTI brain structure of the grayordinate (atlas mode: holding most of the "
                                     "region's grayordinates), e.g. CIFTI_STRUCTURE_CORTEX_LEFT."},
        "vertex": {"Description": "Vertex index on the hemisphere's surface mesh; n/a for volume structures."},
        **{c: {"Description": f"Voxel index along axis {n} of the CIFTI volume (subcortical structures); n/a for "
                              "surface vertices."} for n, c in enumerate("ijk")},
        **{c: {"Description": f"{c} coordinate (mm): voxel centre from the CIFTI affine, or the vertex on a given "
                              "surface; n/a when no surface is known (atlas mode: mean over the region).",
               "Units": "mm"} for c in "xyz"},
        "label": {"Description": "Label key of the region in the atlas (dlabel.nii / label.gii)."},
        "name": {"Description": "Name of the region (the atlas label table)."},
        "n_grayordinates": {"Description": "Number of the run's grayordinates in the region."},
    }


class Grayordinates(ColumnSpace):
    """Columns are the run's grayordinates (CIFTI brain models, or every vertex of a GIFTI pair)."""

    kind = "grayordinates"
    what = "grayordinates"
    mask_extension = ".dscalar.nii"
    on_grayordinates = True
    column_prefix = "grayordinate"

    def __init__(self, bm: go.BrainModels, surfaces: dict | None = None):
        self.bm, self.surfaces = bm, surfaces or {}

    @classmethod
    def build(cls, bold: PathLike, mask_file: PathLike, *, surfaces: dict | None = None, **args) -> Grayordinates:
        return cls(go.brain_models_of(mask_file), surfaces)

    def transform(self, bold: PathLike, out: PathLike, *, bold_right: PathLike | None = None,
                  digest: ReadDigest | None = None, **args) -> int:
        self.bm, n_bad = go.write_run_array(bold, bold_right, out, digest=digest)
        return n_bad

    def features(self) -> dict[str, np.ndarray]:
        return go.features(self.bm, go.read_surfaces(self.surfaces, self.bm))

    @classmethod
    def from_outputs(cls, mask_file: PathLike, image_file: PathLike | None, features: dict) -> Grayordinates:
        return cls(go.brain_models_of(mask_file))

    @property
    def n_columns(self) -> int:
        return len(self.bm)

    def on_grayordinates_of(self, values) -> np.ndarray:
        """Values over the columns as values over the run's grayordinates (n,) / (n, n_grayordinates)."""
        return np.asarray(self.check_values(values))

    def inverse(self, values):
        return go.to_dscalar(self.on_grayordinates_of(values), self.bm)

    @staticmethod
    def feature_descriptions() -> dict[str, dict]:
        return _descriptions()


class GrayordinateLabels(Grayordinates):
    """Columns are the labels of a ``dlabel.nii`` (or ``label.gii`` pair): mean of their grayordinates."""

    kind = "grayordinate_labels"
    what = "atlas regions"
    image = ("dseg", ".dlabel.nii", None)
    column_prefix = "region"
    regions = True

    def __init__(self, bm: go.BrainModels, labels: np.ndarray, names: dict[int, str],
                 values: np.ndarray | None = None, surfaces: dict | None = None, atlas_counts: dict | None = None):
        super().__init__(bm, surfaces)
        self.labels, self.names = labels, names
        self.atlas_counts = atlas_counts  # label -> grayordinates in the atlas file (None: not known)
        self.values = np.unique(labels[labels != 0]) if values is None else np.asarray(values, np.int64)

    @classmethod
    def build(cls, bold: PathLike, mask_file: PathLike, *, atlas_file: PathLike, atlas_right: PathLike | None = None,
              atlas_labels: PathLike | None = None, surfaces: dict | None = None, **args) -> GrayordinateLabels:
        bm = go.brain_models_of(mask_file)
        counts: dict = {}
        if go.is_cifti(bold):
            labels, names = go.read_dlabel(atlas_file, bm, counts)
        else:
            labels, names = go.read_label_gifti_pair(atlas_file, atlas_right, bm, counts)
        if atlas_labels:
            names.update(masking.read_label_table(atlas_labels))
        return cls(bm, labels, names, surfaces=surfaces, atlas_counts=counts)

    def transform(self, bold: PathLike, out: PathLike, *, bold_right: PathLike | None = None, **args) -> int:
        X, self.bm, n_bad = go.read_run(bold, bold_right)
        X, self.values = go.parcellate(X, self.labels)
        save_npy(X, out)
        return n_bad

    def features(self) -> dict[str, np.ndarray]:
        table = go.label_features(self.bm, self.labels, self.values, self.names,
                                  go.read_surfaces(self.surfaces, self.bm))
        if self.atlas_counts is not None:  # the run's grayordinates of the region / the atlas file's
            inside = count_labels(self.labels, self.values)
            total = np.array([self.atlas_counts.get(int(v), 0) for v in self.values], dtype=float)
            table["coverage"] = np.round(np.where(total > 0, inside / np.maximum(total, 1), np.nan), 6)
        return table

    @staticmethod
    def feature_descriptions() -> dict[str, dict]:
        return {**_descriptions(), **coverage_descriptions("region's grayordinates in the atlas file that are "
                                                           "grayordinates of the run")}

    def save_image(self, path: PathLike) -> str:
        go.write_dlabel(path, self.labels, self.bm, self.names)
        return str(path)

    @classmethod
    def from_outputs(cls, mask_file: PathLike, image_file: PathLike | None, features: dict) -> GrayordinateLabels:
        bm = go.brain_models_of(mask_file)
        labels, names = go.read_dlabel(image_file, bm)
        return cls(bm, labels, names, np.array([int(v) for v in features["label"]], dtype=np.int64))

    @property
    def n_columns(self) -> int:
        return int(self.values.size)

    def on_grayordinates_of(self, values) -> np.ndarray:
        return go.expand_labels(self.check_values(values), self.labels, self.values)
