"""Read bidsapp outputs back: one run (:func:`load`) or many runs stacked for machine learning (:func:`dataset`).

>>> run = bidsapp.load("derivatives/bidsapp", subject="01", run=1)
>>> run.X.shape, run.samples.columns, run.to_image(run.X[0])
>>> ds = bidsapp.dataset("derivatives/bidsapp", kind="betas", subject="01")
>>> ds.X, ds.y, ds.groups
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

#: BIDS entities of bidsapp's output names, in BIDS order: (pybids name, file-name key)
ENTITY_KEYS = (
    ("subject", "sub"), ("session", "ses"), ("task", "task"), ("acquisition", "acq"),
    ("ceagent", "ce"), ("reconstruction", "rec"), ("direction", "dir"), ("run", "run"),
    ("echo", "echo"), ("part", "part"), ("hemi", "hemi"), ("space", "space"), ("cohort", "cohort"), ("atlas", "atlas"),
    ("res", "res"), ("den", "den"), ("desc", "desc"),
)
_SHORT = {long: short for long, short in ENTITY_KEYS}
_LONG = {short: long for long, short in ENTITY_KEYS}
#: entities that name one run of the source data (the rest name a processing of it)
_RUN_ENTITIES = ("subject", "session", "task", "acquisition", "ceagent", "reconstruction", "direction", "run",
                 "echo", "part")
_KINDS = ("betas", "trials", "timeseries")


def _entities_of(stem: str) -> dict[str, str]:
    out = {}
    for part in stem.split("_"):
        key, _, value = part.partition("-")
        if key in _LONG and value:
            out[_LONG[key]] = value
    return out


def _same(a: str, b) -> bool:
    b = str(b)
    if a.isdigit() and b.isdigit():
        return int(a) == int(b)
    return a == b


def _check_entities(entities: dict) -> dict:
    unknown = sorted(set(entities) - set(_SHORT))
    if unknown:
        raise ValueError(f"unknown entit{'y' if len(unknown) == 1 else 'ies'} {unknown}; "
                         f"use any of {list(_SHORT)} (pybids names).")
    out = {}
    for key, value in entities.items():
        if value is None:
            continue
        value = str(value)
        prefix = f"{_SHORT[key]}-"
        out[key] = value[len(prefix):] if value.startswith(prefix) else value  # "sub-01" or "01"
    return out


def _runs(output_dir: Path, entities: dict) -> list[tuple[Path, dict]]:
    output_dir = Path(output_dir).absolute()  # Run paths stay valid after a chdir
    if not output_dir.is_dir():
        raise FileNotFoundError(f"{output_dir}: no such folder (the output_dir of a bidsapp run).")
    sidecars = sorted(output_dir.glob("sub-*/**/func/*_timeseries.json"))
    if not sidecars:
        raise FileNotFoundError(f"{output_dir}: no bidsapp outputs (*_timeseries.json); "
                                "run `bidsapp BIDS_DIR OUTPUT_DIR participant` first.")
    wanted = _check_entities(entities)
    found = [(p, _entities_of(p.name[: -len("_timeseries.json")])) for p in sidecars]
    match = [(p, e) for p, e in found if all(k in e and _same(e[k], v) for k, v in wanted.items())]
    if not match:
        hints = []
        for key, value in wanted.items():
            values = sorted({e[key] for _, e in found if key in e})
            if not any(_same(v, value) for v in values):
                hints.append(f"{key} is one of {values}" if values else f"no output has a {key}")
        raise LookupError(f"{output_dir}: no run matches {_fmt(wanted)} among {len(found)} run(s)"
                          + (f" ({'; '.join(hints)})" if hints else "") + ".")
    return match


def _fmt(entities: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in entities.items()) or "(no entities)"


def _varying(match: list[tuple[Path, dict]]) -> dict[str, list[str]]:
    keys = [k for k, _ in ENTITY_KEYS]
    out = {}
    for key in keys:
        values = sorted({e.get(key, "(none)") for _, e in match})
        if len(values) > 1:
            out[key] = values
    return out


def _read_table(path: Path):
    import pandas as pd

    df = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False,
                     dtype={"trial": "string", "trial_type": "string", "name": "string"})
    integers = ("row", "segment", "index", "volume", "column", "label", "vertex")
    integers += ("i", "j", "k") if "vertex" in df else ()  # grayordinates: voxel indices, n/a on surfaces
    for col in integers:
        if col in df and df[col].dtype.kind == "f":
            df[col] = df[col].astype("Int64")
    return df


@dataclass
class Run:
    """One run's outputs, read back (arrays are memory-mapped, tables are pandas DataFrames)."""

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
    def column_space(self):
        """The run's column space (:mod:`bidsapp.core.columns`), from its sidecar's ``ColumnSpace``."""
        return _space(self.kind, self.mask_file, self.dseg_file, self.features)

    def to_image(self, values) -> nib.Nifti1Image:
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


def _space(kind: str, mask_file: Path | None, image_file: Path | None, features):
    """The column space of a run's (or a stack's) outputs."""
    from bidsapp.core import columns

    if mask_file is None:
        raise FileNotFoundError("the run's mask (_mask.nii.gz) is not among its outputs.")
    cls = columns.get(kind)
    if cls.image and image_file is None:
        raise FileNotFoundError(f"the run's columns image (_{cls.image[0]}{cls.image[1]}) is not among its outputs.")
    return cls.from_outputs(mask_file, image_file, {c: features[c].tolist() for c in features.columns})


def _legacy_kind(meta: dict, mask_file: Path | None, image_file: Path | None) -> str:
    """The column space of outputs written before the sidecar recorded ``ColumnSpace``."""
    gray = mask_file is not None and mask_file.name.endswith(".dscalar.nii")
    if image_file is not None:
        return "grayordinate_labels" if gray else "labels"
    return "grayordinates" if gray else "voxels"


def _output(folder: Path, meta: dict, ending: str) -> Path | None:
    listed = [f["Path"] if isinstance(f, dict) else f for f in meta.get("OutputFiles", [])]  # names or entries
    names = [f for f in listed if f.endswith(ending)]
    return folder / names[0] if names and (folder / names[0]).exists() else None


def _load_one(sidecar: Path, entities: dict) -> Run:
    folder, stem = sidecar.parent, sidecar.name[: -len("_timeseries.json")]
    meta = json.loads(sidecar.read_text())
    listed = {f["Path"] if isinstance(f, dict) else f for f in meta.get("OutputFiles", [])}

    def output(suffix: str) -> Path | None:  # only what the sidecar lists belongs to this generation
        name = f"{stem}_{suffix}"
        return folder / name if name in listed and (folder / name).exists() else None

    if output("timeseries.npy"):
        X = np.load(output("timeseries.npy"), mmap_mode="r")
    elif output("timeseries.tsv.gz"):
        X = _read_table(output("timeseries.tsv.gz")).to_numpy(dtype=np.float32)
    else:
        raise FileNotFoundError(f"{folder / stem}_timeseries.npy: missing (the run's outputs are incomplete; "
                                "rerun the participant level).")
    mask_file = next((folder / f for f in sorted(listed) if f.endswith(("_mask.nii.gz", "_mask.dscalar.nii"))
                      and "_atlas-" not in f and (folder / f).exists()), None)
    if "ColumnSpace" in meta:
        kind, image = meta["ColumnSpace"], meta.get("ColumnImage")
        image_file = folder / image if image and image in listed and (folder / image).exists() else None
    else:
        image_file = (_output(folder, meta, "_dseg.nii.gz") or _output(folder, meta, "_dseg.dlabel.nii")
                      if entities.get("atlas") else None)
        kind = _legacy_kind(meta, mask_file, image_file)
    run = Run(stem=stem, folder=folder, entities=entities, meta=meta, X=X,
              samples=_read_table(folder / f"{stem}_samples.tsv"),
              features=_read_table(folder / f"{stem}_features.tsv"),
              mask_file=mask_file, dseg_file=image_file, kind=kind)
    for kind in ("trials", "betas"):
        if output(f"{kind}.npy") and output(f"{kind}.tsv"):
            setattr(run, kind, np.load(output(f"{kind}.npy"), mmap_mode="r"))
            setattr(run, f"{kind}_table", _read_table(output(f"{kind}.tsv")))
    if len(run.features) != X.shape[1]:
        raise ValueError(f"{folder / stem}_features.tsv: {len(run.features)} rows for {X.shape[1]} columns "
                         "of the array; the run's outputs are inconsistent, rerun it.")
    return run


def load(output_dir: str | Path, **entities) -> Run:
    """One run's outputs, chosen by BIDS entities (pybids names).

    Parameters
    ----------
    output_dir : str or Path
        The bidsapp output folder.
    **entities
        ``subject``, ``session``, ``task``, ``run``, ``space``, ``desc``, ``atlas``, ... (``"sub-01"``
        and ``"01"``, ``run=1`` and ``run="01"`` are the same).

    Returns
    -------
    Run
        ``X`` (n_rows, n_features), memory-mapped; ``samples`` (one row per volume), ``features``
        (one row per column); ``meta`` (the sidecar); ``trials`` / ``betas`` and their tables when
        written; ``to_image(values)``.

    Raises
    ------
    LookupError
        When no run, or more than one run, matches (the message lists the candidates and the entity
        that tells them apart).
    """
    match = _runs(Path(output_dir), entities)
    if len(match) > 1:
        varying = _varying(match)
        key, values = next(iter(varying.items()))
        raise LookupError(
            f"{len(match)} runs match {_fmt(_check_entities(entities))}: "
            + ", ".join(p.name[: -len('_timeseries.json')] for p, _ in match)
            + f"; add {key}=... (one of {values}) to choose one.")
    return _load_one(*match[0])


@dataclass
class Dataset:
    """Runs stacked for machine learning: ``X``, ``y``, ``groups`` and one table row per row of ``X``."""

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    table: object
    features: object
    runs: list[str] = field(default_factory=list)
    mask_file: Path | None = None
    dseg_file: Path | None = None
    _mask: np.ndarray | None = None
    kind: str = "voxels"

    def to_image(self, values) -> nib.Nifti1Image:
        """A NIfTI image of values over the shared columns (see :meth:`Run.to_image`)."""
        if self._mask is None:
            return _space(self.kind, self.mask_file, self.dseg_file, self.features).inverse(values)
        from bidsapp.core import masking

        img = nib.load(self.mask_file)
        return masking.unmask(np.asarray(values), self._mask, img.affine)


def _rows(run: Run, kind: str, drop_invalid: bool):
    """(X, table) of one run for a kind; X is read into memory."""
    if kind == "timeseries":
        table = run.samples[run.samples["kept"]].sort_values("row").reset_index(drop=True)
        return np.asarray(run.X), table
    data, table = getattr(run, kind), getattr(run, f"{kind}_table")
    if data is None:
        hint = "--trial-estimates lss" if kind == "betas" else "an events.tsv for the run"
        raise FileNotFoundError(f"{run.folder / run.stem}_{kind}.npy: not written for this run (needs {hint}).")
    if kind == "trials":  # trials.npy holds only the trials with a segment
        table = table[table["segment"].notna()].sort_values("segment")
        data = np.asarray(data)[table["segment"].to_numpy(dtype=np.int64)]
    else:
        data = np.asarray(data)
    if drop_invalid:
        keep = table["valid"].to_numpy(dtype=bool)
        table, data = table[keep], data[keep]
    return data, table.reset_index(drop=True)


def _column_space(runs: list[Run]) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Column indices of each run into the shared column space, and the shared voxel mask (voxel mode)."""
    from bidsapp.core import columns

    first = runs[0]
    for r in runs[1:]:
        if r.kind != first.kind:
            raise ValueError(f"{r.folder / r.stem}: its columns are {r.kind}, those of {first.stem} are {first.kind}; "
                             "runs with different kinds of columns cannot be stacked.")
    if columns.get(first.kind).image:  # regions, maps or spheres: those present in every run
        key = "label" if "label" in first.features else "name"
        label_sets = [r.features[key].to_numpy() for r in runs]
        common = sorted(set(label_sets[0]).intersection(*label_sets[1:]))
        picks = [np.flatnonzero(np.isin(lab, common)) for lab in label_sets]
        dropped = max(lab.size for lab in label_sets) - len(common)
        if dropped:
            warnings.warn(f"runs do not share the same atlas regions: {dropped} column(s) dropped, "
                          f"{len(common)} regions kept (present in every run).", stacklevel=3)
        return picks, None
    if columns.get(first.kind).on_grayordinates:
        for r in runs[1:]:
            if r.brain_models != first.brain_models:
                raise ValueError(f"{r.mask_file}: grayordinates differ from {first.mask_file}; runs with different "
                                 "brain models cannot be stacked.")
        return [np.arange(len(first.features))] * len(runs), None
    imgs = [nib.load(r.mask_file) for r in runs]
    for r, img in zip(runs[1:], imgs[1:]):
        if img.shape != imgs[0].shape or not np.allclose(img.affine, imgs[0].affine, atol=1e-4):
            raise ValueError(f"{r.mask_file}: grid {img.shape} differs from {runs[0].mask_file} "
                             f"{imgs[0].shape}; runs on different grids cannot be stacked (resample first).")
    masks = [np.asanyarray(img.dataobj) > 0 for img in imgs]
    common = np.logical_and.reduce(masks)
    if all((m == common).all() for m in masks):
        return [np.arange(int(common.sum()))] * len(runs), None
    # column j of a run is voxel j of its mask in C order: keep the voxels in every mask
    picks = [np.flatnonzero(common[m]) for m in masks]
    dropped = max(int(m.sum()) for m in masks) - int(common.sum())
    warnings.warn(f"runs have different masks: using their intersection ({int(common.sum())} voxels); "
                  f"{dropped} column(s) dropped from the largest mask.", stacklevel=3)
    return picks, common


def dataset(output_dir: str | Path, kind: str = "betas", *, y: str = "trial_type", drop_invalid: bool = True,
            **entities) -> Dataset:
    """Stack the matching runs (and sessions) into ``X``, ``y``, ``groups`` and a per-row table.

    Parameters
    ----------
    output_dir : str or Path
        The bidsapp output folder.
    kind : {"betas", "trials", "timeseries"}
        ``betas``: one row per trial (LSS estimates, (n, n_features)); ``trials``: one row per trial
        segment, (n, n_offsets, n_features); ``timeseries``: one row per kept volume.
    y : str
        Column of the per-row table used as the target (default ``trial_type``).
    drop_invalid : bool
        Leave out trials whose ``valid`` is False (NaN or unreliable estimates); not for timeseries.
    **entities
        As in :func:`load`; ``space``, ``desc`` and ``atlas`` must end up single-valued.

    Returns
    -------
    Dataset
        ``X`` (in memory), ``y``, ``groups`` (the run each row comes from, for leave-one-run-out),
        ``table`` (the per-row table plus the run's entities), ``features`` and ``to_image(values)``.

    Raises
    ------
    LookupError
        No run matches, or the runs mix spaces / denoising / atlases.
    ValueError
        Unknown kind or target column, or masks on different grids.
    """
    import pandas as pd

    if kind not in _KINDS:
        raise ValueError(f"kind={kind!r}: use one of {list(_KINDS)}.")
    match = _runs(Path(output_dir), entities)
    mixed = {k: v for k, v in _varying(match).items() if k not in _RUN_ENTITIES}
    if mixed:
        key, values = next(iter(mixed.items()))
        raise LookupError(f"the {len(match)} matching runs mix {key} values {values}: their columns are not "
                          f"comparable; add {key}=... to choose one.")
    runs = [_load_one(p, e) for p, e in match]
    picks, common = _column_space(runs)
    blocks, tables = [], []
    for run, cols in zip(runs, picks):
        data, table = _rows(run, kind, drop_invalid and kind != "timeseries")
        blocks.append(data[..., cols])
        source = "_".join(f"{_SHORT[k]}-{run.entities[k]}" for k in _RUN_ENTITIES if k in run.entities)
        for key in reversed([k for k in _RUN_ENTITIES if k in run.entities]):
            table.insert(0, key, run.entities[key])
        table.insert(0, "source", source)
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    if y not in table:
        raise ValueError(f"y={y!r} is not a column of the {kind} table; columns: {list(table.columns)}.")
    features = runs[0].features.iloc[picks[0]].reset_index(drop=True)
    return Dataset(X=np.concatenate(blocks), y=table[y].to_numpy(), groups=table["source"].to_numpy(),
                   table=table, features=features, runs=[r.stem for r in runs],
                   mask_file=runs[0].mask_file, dseg_file=runs[0].dseg_file, _mask=common, kind=runs[0].kind)
