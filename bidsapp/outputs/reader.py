"""The one reader of a run's outputs: its sidecar, which files it lists, their sizes and checksums, the rows,
the samples and features tables, the trial arrays and the mask.

:func:`read_run` is used by the public loader (:func:`bidsapp.load`, :func:`bidsapp.dataset`), the group level
(``group_runs.tsv``, intersection masks, the denoising benchmark) and the participant report, so that they read
the same values and refuse the same incomplete or inconsistent outputs with the same message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bidsapp.bids.naming import entities_of
from bidsapp.outputs import writers

#: the ending of a run's sidecar (written last: a run without it is incomplete)
SIDECAR_ENDING = "_timeseries.json"
#: file endings of a run's rows (the sidecar ``_timeseries.json`` is written last, so a run may lack it)
ROW_ENDINGS = (SIDECAR_ENDING,) + tuple(f"_{ending}" for ending in writers.ROW_FILES)
_MASK_ENDINGS = tuple(f"_{ending}" for ending in writers.get("mask").files)


def stem_of(sidecar: Path) -> str:
    """``<stem>_timeseries.json`` -> ``<stem>``."""
    return Path(sidecar).name[: -len(SIDECAR_ENDING)]


def listed_outputs(meta: dict) -> list[str]:
    """The file names a sidecar's ``OutputFiles`` lists (entries ``{"Path", "Size", "SHA256"}`` or plain names)."""
    names = (f.get("Path") if isinstance(f, dict) else f for f in meta.get("OutputFiles") or [])
    return [name for name in names if isinstance(name, str)]


def read_sidecar(sidecar: Path) -> dict | None:
    """A run's sidecar, parsed (None when it is missing, unreadable or not a JSON object)."""
    try:
        meta = json.loads(Path(sidecar).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def run_metas(sidecars: list[Path]) -> list[dict]:
    """The sidecars' contents, each with ``BIDSAppRun`` (the run's file stem) added (what the methods text reads)."""
    return [dict(json.loads(Path(sc).read_text()), BIDSAppRun=stem_of(sc)) for sc in sidecars]


def problem(sidecar: Path, verify: bool = False) -> str | None:
    """Why a run's outputs are incomplete (None when complete): no sidecar, a listed file missing,
    a size (or, with ``verify``, a checksum) that differs from the sidecar."""
    from bidsapp.core.io import sha256sum

    sidecar = Path(sidecar)
    if not sidecar.exists():
        return "no sidecar: the run was interrupted or is being written"
    meta = read_sidecar(sidecar)
    if meta is None:
        return "its sidecar is unreadable"
    for entry in meta.get("OutputFiles") or []:
        if not isinstance(entry, dict):
            continue
        path = sidecar.parent / entry.get("Path", "")
        if not path.is_file():
            return f"{entry.get('Path')} is missing"
        if "Size" in entry and path.stat().st_size != entry["Size"]:
            return f"{entry['Path']} has another size than its sidecar lists (changed after it was written)"
        if verify and "SHA256" in entry and sha256sum(path) != entry["SHA256"]:
            return f"{entry['Path']} has another checksum than its sidecar lists (changed after it was written)"
    return None


def read_table(path: Path):
    """A ``_samples.tsv`` / ``_features.tsv`` as a pandas DataFrame (n/a: missing; integer columns as Int64)."""
    import pandas as pd

    df = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False,
                     dtype={"trial": str, "trial_type": str, "name": "string"})
    integers = ("row", "segment", "index", "volume", "column", "label", "vertex")
    integers += ("i", "j", "k") if "vertex" in df else ()  # grayordinates: voxel indices, n/a on surfaces
    for col in integers:
        if col in df and df[col].dtype.kind == "f":
            df[col] = df[col].astype("Int64")
    return df


#: columns bidsapp writes in ``_trials.tsv`` / ``_betas.tsv`` and their types; every other column comes from
#: events.tsv and is read as text, exactly as written (``001`` stays ``001``)
_TRIAL_COLUMNS = {"index": "Int64", "onset": float, "duration": float, "trial_type": str, "n_censored": "Int64",
                  "outside_run": bool, "valid": bool, "segment": "Int64", "response_retained": float,
                  "variance_inflation": float, "variance_factor": float, "fir_offset": float, "reason": str,
                  "beta_variance": float}


def read_trial_table(path: Path):
    """A ``_trials.tsv`` / ``_betas.tsv``: our columns typed, the events.tsv columns as text (n/a: missing)."""
    import pandas as pd

    df = pd.read_csv(path, sep="\t", dtype=str, na_values=["n/a"], keep_default_na=False)
    for col, kind in _TRIAL_COLUMNS.items():
        if col not in df or kind is str:
            continue
        if kind is bool:
            df[col] = df[col].map({"True": True, "False": False, "true": True, "false": False})
        else:
            df[col] = pd.to_numeric(df[col]).astype(kind)
    return df


@dataclass
class Run:
    """One run's outputs, read back (arrays are memory-mapped, tables are pandas DataFrames).

    The one view of a processed run, made by ``bidsapp.outputs.reader.read_run``: :func:`bidsapp.load` returns
    it (as ``bidsapp.api.Run``), and the group level and the participant report read the same object. (A run's
    *inputs*, as collected from the fMRIPrep folder, are ``bidsapp.bids.collect.Run``.)
    """

    stem: str
    folder: Path
    entities: dict
    meta: dict
    X: np.ndarray
    samples: object
    features: object
    trials: np.ndarray | None = None
    trials_table: object = None
    betas: np.ndarray | None = None
    betas_table: object = None
    mask_file: Path | None = None
    dseg_file: Path | None = None
    kind: str = "voxels"

    @property
    def qc(self) -> dict:
        """The run's QC metrics (the sidecar's ``QC`` values by name; units in ``meta["QC"]``), empty for outputs
        written before QC metrics."""
        return {k: v.get("Value") for k, v in (self.meta.get("QC") or {}).items()}

    @property
    def column_space(self):
        """The run's column space (:mod:`bidsapp.core.columns`), from its sidecar's ``ColumnSpace``."""
        return column_space_of(self.kind, self.mask_file, self.dseg_file, self.features)

    def to_image(self, values):
        """A NIfTI image of values over the columns: (n_features,) -> 3D, (n, n_features) -> 4D.

        Voxel mode: each voxel of the mask gets its column's value; atlas mode: each region of the
        ``_dseg.nii.gz`` image gets its column's value; 0 elsewhere; maps: the sum of the maps weighted by
        the values; spheres: each sphere's voxels (the mean where spheres overlap). Grayordinate runs (CIFTI / GIFTI):
        a ``dscalar.nii`` (one map per row of ``values``) over the run's grayordinates; per-hemisphere
        ``func.gii`` with ``bidsapp.core.grayordinates.to_gifti(values, run.brain_models)``.
        """
        return self.column_space.inverse(values)

    @property
    def brain_models(self):
        """Grayordinate runs: the columns as a nibabel ``BrainModelAxis`` (from ``_desc-brain_mask.dscalar.nii``)."""
        from bidsapp.core import columns, grayordinates

        if self.mask_file is None or not columns.get(self.kind).on_grayordinates:
            raise ValueError(f"{self.stem}: not a grayordinate run (its columns are voxels or regions of a volume).")
        return grayordinates.brain_models_of(self.mask_file)

    @property
    def sidecar(self) -> Path:
        """The run's ``_timeseries.json``."""
        return self.folder / f"{self.stem}{SIDECAR_ENDING}"

    @property
    def outputs(self) -> dict[str, Path]:
        """The files the sidecar lists, by name (this generation's outputs)."""
        return {name: self.folder / name for name in listed_outputs(self.meta)}

    def output(self, ending: str) -> Path | None:
        """The listed output whose name ends with ``ending`` (e.g. ``_features.tsv``), None when there is none."""
        return next((p for name, p in self.outputs.items() if name.endswith(ending)), None)

    @property
    def n_volumes(self) -> int:
        """Volumes of the run (rows of ``samples``; ``X`` holds the kept ones)."""
        return len(self.samples)

    @property
    def framewise_displacement(self) -> np.ndarray:
        """Framewise displacement of every volume (mm; NaN where n/a, e.g. the first volume)."""
        return self.samples["framewise_displacement"].to_numpy(dtype=np.float64, na_value=np.nan)

    @property
    def kept(self) -> np.ndarray:
        """Which volumes are rows of ``X`` (bool, one per volume)."""
        return self.samples["kept"].to_numpy(dtype=bool)


def column_space_of(kind: str, mask_file: Path | None, image_file: Path | None, features):
    """The column space of a run's (or a stack's) outputs."""
    from bidsapp.core import columns

    if mask_file is None:
        raise FileNotFoundError("the run's mask (_mask.nii.gz) is not among its outputs.")
    cls = columns.get(kind)
    if cls.image and image_file is None:
        raise FileNotFoundError(f"the run's columns image (_{cls.image[0]}{cls.image[1]}) is not among its outputs.")
    return cls.from_outputs(mask_file, image_file, {c: features[c].tolist() for c in features.columns})


def _legacy_kind(mask_file: Path | None, image_file: Path | None) -> str:
    """The column space of outputs written before the sidecar recorded ``ColumnSpace``."""
    gray = mask_file is not None and mask_file.name.endswith(".dscalar.nii")
    if image_file is not None:
        return "grayordinate_labels" if gray else "labels"
    return "grayordinates" if gray else "voxels"


def _incomplete(folder: Path, stem: str, why: str) -> FileNotFoundError:
    return FileNotFoundError(f"{folder / stem}: outputs incomplete ({why}); rerun the participant level "
                             "for this run.")


def read_run(sidecar: str | Path, *, verify: bool = False, entities: dict | None = None) -> Run:
    """One run's outputs named by its sidecar (``<stem>_timeseries.json``).

    Parameters
    ----------
    sidecar : str or Path
        The run's ``_timeseries.json``.
    verify : bool
        Re-hash every output file and compare with the sidecar's checksums (sizes are always compared).
    entities : dict, optional
        The run's entities (pybids names); default: those of its file name.

    Raises
    ------
    FileNotFoundError
        The outputs are incomplete: no sidecar, a listed file missing or changed, no rows, tables or mask.
    ValueError
        The arrays and their tables describe different rows or columns (outputs mixed by hand).
    """
    sidecar = Path(sidecar).absolute()
    folder, stem = sidecar.parent, stem_of(sidecar)
    why = problem(sidecar, verify)
    if why is not None:
        raise _incomplete(folder, stem, why)
    meta = json.loads(sidecar.read_text())
    listed = set(listed_outputs(meta))

    def output(suffix: str) -> Path | None:  # only what the sidecar lists belongs to this generation
        name = f"{stem}_{suffix}"
        return folder / name if name in listed and (folder / name).exists() else None

    row_file = next((output(ending) for ending in writers.ROW_FILES if output(ending)), None)
    if row_file is None:
        raise FileNotFoundError(f"{folder / stem}_timeseries.npy: missing (the run's outputs are incomplete; "
                                "rerun the participant level).")
    for name in ("samples.tsv", "features.tsv"):
        if output(name) is None:
            raise FileNotFoundError(f"{folder / stem}_{name}: missing or not listed by its sidecar (the run's "
                                    "outputs are incomplete; rerun the participant level for this run).")
    mask_file, image_file, kind = _columns_files(folder, stem, meta, listed)
    run = Run(stem=stem, folder=folder, entities=entities_of(stem) if entities is None else entities, meta=meta,
              X=writers.read_rows(row_file), samples=read_table(output("samples.tsv")),
              features=read_table(output("features.tsv")), mask_file=mask_file, dseg_file=image_file, kind=kind)
    for kind in ("trials", "betas"):
        if output(f"{kind}.npy") and output(f"{kind}.tsv"):
            setattr(run, kind, np.load(output(f"{kind}.npy"), mmap_mode="r"))
            setattr(run, f"{kind}_table", read_trial_table(output(f"{kind}.tsv")))
    check_rows(run)
    return run


def _columns_files(folder: Path, stem: str, meta: dict, listed: set[str]) -> tuple[Path, Path | None, str]:
    """The run's mask, its columns image (None for voxels and grayordinates) and its column space."""
    mask_file = next((folder / f for f in sorted(listed) if f.endswith(_MASK_ENDINGS)
                      and "_atlas-" not in f and (folder / f).exists()), None)
    if mask_file is None:
        raise FileNotFoundError(f"{folder / stem}: its mask (_mask.nii.gz) is not among the outputs its sidecar "
                                "lists; rerun the participant level for this run.")
    if "ColumnSpace" in meta:
        image = meta.get("ColumnImage")
        image_file = folder / image if image and image in listed and (folder / image).exists() else None
        return mask_file, image_file, meta["ColumnSpace"]

    def present(ending: str) -> Path | None:
        names = [f for f in listed_outputs(meta) if f.endswith(ending)]
        return folder / names[0] if names and (folder / names[0]).exists() else None

    image_file = (present("_dseg.nii.gz") or present("_dseg.dlabel.nii")) if entities_of(stem).get("atlas") else None
    return mask_file, image_file, _legacy_kind(mask_file, image_file)


def check_rows(run: Run) -> None:
    """Arrays and their tables must describe the same rows and columns (else the outputs were mixed by hand)."""
    where = run.folder / run.stem
    if len(run.features) != run.X.shape[1]:
        raise ValueError(f"{where}_features.tsv: {len(run.features)} rows for {run.X.shape[1]} columns "
                         "of the array; the run's outputs are inconsistent, rerun it.")
    kept = int(run.samples["kept"].sum()) if "kept" in run.samples else run.X.shape[0]
    if kept != run.X.shape[0]:
        raise ValueError(f"{where}_samples.tsv: {kept} kept volumes for {run.X.shape[0]} rows of the array; the "
                         "run's outputs are inconsistent, rerun it.")
    if run.betas is not None and len(run.betas_table) != run.betas.shape[0]:
        raise ValueError(f"{where}_betas.tsv: {len(run.betas_table)} trials for {run.betas.shape[0]} rows of "
                         "_betas.npy; the run's outputs are inconsistent, rerun it.")
    if run.trials is not None and int(run.trials_table["segment"].notna().sum()) != run.trials.shape[0]:
        raise ValueError(f"{where}_trials.tsv: {int(run.trials_table['segment'].notna().sum())} segments for "
                         f"{run.trials.shape[0]} rows of _trials.npy; the run's outputs are inconsistent, rerun it.")
