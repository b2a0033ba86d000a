"""Read bidsapp outputs back: one run (:func:`load`) or many runs stacked for machine learning (:func:`dataset`).

>>> run = bidsapp.load("derivatives/bidsapp", subject="01", run=1)
>>> run.X.shape, run.samples.columns, run.to_image(run.X[0])
>>> ds = bidsapp.dataset("derivatives/bidsapp", kind="betas", subject="01")
>>> ds.X, ds.y, ds.groups
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from bidsapp.bids.naming import ENTITY_KEYS, SHORT_KEYS, stem_of_entities
from bidsapp.bids.naming import entities_of as _entities_of
from bidsapp.outputs import reader
from bidsapp.outputs.reader import Run

__all__ = ["Dataset", "Run", "dataset", "load"]

_SHORT = SHORT_KEYS
#: entities that name one run of the source data (the rest name a processing of it)
_RUN_ENTITIES = reader.RUN_ENTITIES
_KINDS = ("betas", "trials", "timeseries", "connectivity")


#: entities whose values are indices (BIDS: ``run-1`` and ``run-01`` are the same run); the others are labels
_INDEX_ENTITIES = reader.INDEX_ENTITIES


def _same(key: str, have: str | None, want: str | None) -> bool:
    """Does an output's entity value ``have`` (None: the name has no such entity) match the wanted one?

    Labels are compared as written (``sub-01`` is not ``sub-1``); indices (run, echo) as integers;
    ``None`` wanted matches only outputs without the entity (``atlas=None``: voxel outputs).
    """
    if want is None or have is None:
        return want is None and have is None
    if key in _INDEX_ENTITIES and have.isdigit() and want.isdigit():
        return int(have) == int(want)
    return have == want


def _check_entities(entities: dict) -> dict:
    unknown = sorted(set(entities) - set(_SHORT))
    if unknown:
        raise ValueError(f"unknown entit{'y' if len(unknown) == 1 else 'ies'} {unknown}; "
                         f"use any of {list(_SHORT)} (pybids names).")
    out = {}
    for key, value in entities.items():
        if value is None:  # explicitly absent: atlas=None selects the voxel (or grayordinate) outputs
            out[key] = None
            continue
        value = str(value)
        prefix = f"{_SHORT[key]}-"
        out[key] = value[len(prefix):] if value.startswith(prefix) else value  # "sub-01" or "01"
    return out


@dataclass(frozen=True)
class _Candidate:
    """One run's output set found in the folder (complete or not)."""

    folder: Path
    stem: str
    entities: dict

    @property
    def sidecar(self) -> Path:
        return self.folder / f"{self.stem}{reader.SIDECAR_ENDING}"


def _sort_key(value):
    return (value is None, value or "")


def _runs(output_dir: Path, entities: dict) -> list[_Candidate]:
    output_dir = Path(output_dir).absolute()  # Run paths stay valid after a chdir
    if not output_dir.is_dir():
        raise FileNotFoundError(f"{output_dir}: no such folder (the output_dir of a bidsapp run).")
    stems = _output_stems(output_dir)
    if not stems:
        raise FileNotFoundError(f"{output_dir}: no bidsapp outputs (*_timeseries.json); "
                                "run `bidsapp BIDS_DIR OUTPUT_DIR participant` first.")
    wanted = _check_entities(entities)
    found = [_Candidate(folder, stem, _entities_of(stem)) for folder, stem in sorted(stems)]
    match = [c for c in found if all(_same(k, c.entities.get(k), v) for k, v in wanted.items())]
    if not match:
        hints = []
        for key, value in wanted.items():
            values = sorted({c.entities.get(key) for c in found}, key=_sort_key)
            if not any(_same(key, v, value) for v in values):
                hints.append(f"{key} is one of {values}" if values != [None] else f"no output has a {key}")
        raise LookupError(f"{output_dir}: no run matches {_fmt(wanted)} among {len(found)} run(s)"
                          + (f" ({'; '.join(hints)})" if hints else "") + ".")
    _check_unique(match)
    return match


def _output_stems(output_dir: Path) -> set[tuple[Path, str]]:
    """(folder, stem) of the outputs laid out as bidsapp writes them (:func:`bidsapp.outputs.reader.output_files`)."""
    return {(path.parent, path.name[: -len(ending)]) for ending in reader.ROW_ENDINGS
            for path in reader.output_files(output_dir, ending)}


def _check_unique(match: list[_Candidate]) -> None:
    """Two outputs with the same entities are one run written twice: refuse, naming both (never stack both)."""
    reader.check_unique([c.sidecar for c in match])


def _fmt(entities: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in entities.items()) or "(no entities)"


def _varying(match: list[_Candidate]) -> dict[str, list]:
    """Entities whose values differ among the runs (None: the name has no such entity)."""
    out = {}
    for key, _ in ENTITY_KEYS:
        values = sorted({c.entities.get(key) for c in match}, key=_sort_key)
        if len(values) > 1:
            out[key] = values
    return out


def _choose_hint(varying: dict[str, list]) -> str:
    """``add run=... (one of ['1', '2'])``: a hint that can be typed as written."""
    if not varying:  # never with outputs that pass _check_unique
        return "rename or remove all but one"
    key, values = next(iter(varying.items()))
    return f"add {key}=... (one of {values})"


def load(output_dir: str | Path, *, verify: bool = False, **entities) -> Run:
    """One run's outputs, chosen by BIDS entities (pybids names).

    Parameters
    ----------
    output_dir : str or Path
        The bidsapp output folder.
    verify : bool
        Re-hash every output file and compare with the checksums of its sidecar (sizes are always
        compared).
    **entities
        ``subject``, ``session``, ``task``, ``run``, ``space``, ``desc``, ``atlas``, ... (``"sub-01"``
        and ``"01"`` are the same; labels are compared as written, so ``"01"`` is not ``"1"``; indices
        (``run``, ``echo``) as integers: ``run=1`` and ``run="01"`` are the same). ``None`` selects outputs
        without the entity: ``atlas=None`` gives the voxel (or grayordinate) outputs.

    Outputs are read where bidsapp writes them, ``sub-<label>[/ses-<label>]/func/``, from files whose ``sub`` (and
    ``ses``) entity is their folder's: another folder (``sub-01_old``, a copy) is not read.

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
        that tells them apart), or two outputs have the same entities (``run-1`` and ``run-01``: both named).
    FileNotFoundError
        When the run's outputs are incomplete (no sidecar, a listed file missing or changed).
    """
    match = _runs(Path(output_dir), entities)
    if len(match) > 1:
        raise LookupError(
            f"{len(match)} runs match {_fmt(_check_entities(entities))}: "
            + ", ".join(c.stem for c in match) + f"; {_choose_hint(_varying(match))} to choose one.")
    return reader.read_run(match[0].sidecar, verify=verify, entities=match[0].entities)




@dataclass
class Dataset:
    """Runs stacked for machine learning: ``X``, ``y``, ``groups`` and one table row per row of ``X``."""

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    table: object
    features: object
    runs: list[str] = field(default_factory=list)  #: the stacked runs (those with a row in X), in X's order
    mask_file: Path | None = None
    dseg_file: Path | None = None
    _mask: np.ndarray | None = None
    kind: str = "voxels"
    qc: object = None  #: one row per stacked run (as ``runs``): its QC metrics (group_runs.tsv columns), a DataFrame

    def reliable_columns(self, train, *, repeats: str, n_columns: int | None = None,
                         min_reliability: float | None = None) -> np.ndarray:
        """Columns ranked by split-half reliability computed on the training rows only.

        For feature selection inside a cross-validation fold: only the rows of ``train`` are read (the
        held-out rows never influence the choice), and reliability uses only the ``repeats`` column
        (e.g. ``stimulus_id``: trials with equal values are repeats of one stimulus), never ``y``.

        Parameters
        ----------
        train : array-like
            The fold's training rows: run names (values of ``groups``), row indices, or a boolean mask.
        repeats : str
            Column of ``table`` whose equal values are repeats (an events.tsv column).
        n_columns : int, optional
            Keep this many of the most reliable columns.
        min_reliability : float, optional
            Keep the columns at least this reliable.

        Returns
        -------
        numpy.ndarray of int
            Column indices of ``X``, most reliable first (columns with NaN reliability last, or dropped by
            ``min_reliability``).

        Raises
        ------
        ValueError
            Unknown ``repeats`` column, ``repeats`` is the decoded ``y`` column ``trial_type``, ``train``
            selects no rows, or has row indices outside ``0 .. len(X) - 1`` (negative ones included: they are
            not counted from the end).
        """
        from bidsapp.core.trial_cv import split_half_reliability

        if repeats not in self.table:
            raise ValueError(f"repeats={repeats!r} is not a column of the table; columns: {list(self.table.columns)}.")
        if repeats == "trial_type":
            raise ValueError("repeats='trial_type': selecting columns on the labels a decoder predicts is circular; "
                             "name a stimulus column (e.g. stimulus_id).")
        rows = _training_rows(train, self.groups)
        if rows.size == 0:
            raise ValueError("train: no training rows (an empty list or an all-False mask); reliability needs the "
                             "fold's training runs or rows.")
        values = self.table[repeats].astype(str).to_numpy()[rows]
        rel = split_half_reliability(np.asarray(self.X[rows], dtype=np.float64), values, self.groups[rows])
        order = np.argsort(-np.where(np.isnan(rel), -np.inf, rel), kind="stable")
        if min_reliability is not None:
            order = order[rel[order] >= min_reliability]
        return order[:n_columns] if n_columns is not None else order

    def to_image(self, values) -> nib.Nifti1Image:
        """A NIfTI image of values over the shared columns (see :meth:`Run.to_image`)."""
        if self._mask is None:
            return reader.column_space_of(self.kind, self.mask_file, self.dseg_file, self.features).inverse(values)
        from bidsapp.core import masking

        img = nib.load(self.mask_file)
        return masking.unmask(np.asarray(values), self._mask, img.affine)


def _training_rows(train, groups: np.ndarray) -> np.ndarray:
    """Row indices from run names, row indices or a boolean mask."""
    train = np.asarray(train)
    if train.dtype == bool:
        if train.shape != groups.shape:
            raise ValueError(f"train: a boolean mask needs {groups.size} values, got {train.size}.")
        return np.flatnonzero(train)
    if train.dtype.kind in "iu":
        outside = np.unique(train[(train < 0) | (train >= groups.size)])
        if outside.size:
            raise ValueError(f"train: row indices {outside[:5].tolist()}{' ...' if outside.size > 5 else ''} are "
                             f"outside the dataset's {groups.size} rows (0 to {groups.size - 1}; negative indices "
                             "are not counted from the end); pass row indices of X, run names or a boolean mask.")
        return train
    unknown = sorted(set(train.tolist()) - set(groups.tolist()))
    if unknown:
        raise ValueError(f"train: {unknown} are not runs of the dataset (its groups).")
    return np.flatnonzero(np.isin(groups, train))


def _rows(run: Run, kind: str, drop_invalid: bool):
    """(X, table) of one run for a kind; X is read into memory."""
    if kind == "timeseries":
        table = run.samples[run.samples["kept"]].sort_values("row").reset_index(drop=True)
        return np.asarray(run.X), table
    data, table = getattr(run, kind), getattr(run, f"{kind}_table")
    if data is None:
        trials = run.meta.get("Trials") or {}
        estimates = (run.meta.get("Parameters") or {}).get("trial_estimates")
        if not trials.get("EventsFile"):
            why = "the run has no events.tsv (a rest run?); select task runs with task=... or use kind='timeseries'"
        elif kind == "betas" and estimates not in ("lss", "lsa", "optimized"):
            why = ("it was made without --trial-estimates (lss, lsa or optimized); rerun the participant level "
                   "with one")
        else:
            why = "its outputs are incomplete; rerun the participant level for this run"
        raise FileNotFoundError(f"{run.folder / run.stem}_{kind}.npy: not written for this run ({why}).")
    if kind == "trials":  # trials.npy holds only the trials with a segment
        table = table[table["segment"].notna()].sort_values("segment")
        data = np.asarray(data)[table["segment"].to_numpy(dtype=np.int64)]
    else:
        data = np.asarray(data)
    if drop_invalid:
        keep = table["valid"].to_numpy(dtype=bool)
        table, data = table[keep], data[keep]
    return data, table.reset_index(drop=True)


OVERLAP_RULES = ("error", "first", "drop", "all")


def _missing(value) -> bool:
    """None, NaN or pandas' NA (an n/a cell)."""
    return value is None or type(value).__name__ == "NAType" or (isinstance(value, float) and np.isnan(value))


def _volume_targets(run: Run, table, y: str, overlap: str) -> tuple[list, int]:
    """``y`` of each kept volume from the trials it lies in (their ``index`` in the samples' ``trial`` column).

    A volume in no trial gets None; in trials whose ``y`` is n/a, it is marked for removal (``_NA``);
    in trials with different values, the ``overlap`` rule decides. Returns the values and the number
    of volumes left out by ``overlap="drop"``.
    """
    trials = run.trials_table
    if trials is None and y == "trial_type":  # a run without events: no volume is inside a trial
        return [() if overlap == "all" else None] * len(table), 0
    if trials is None:
        raise ValueError(f"{run.folder / run.stem}_trials.tsv: not written (the run has no events.tsv), so its "
                         f"volumes have no {y!r}; choose task runs with task=... or a _samples.tsv column as y.")
    value_of = dict(zip(trials["index"].astype(int), trials[y]))
    onset_of = dict(zip(trials["index"].astype(int), trials["onset"]))
    out, n_overlap, dropped, example = [], 0, 0, None
    for ids in table["trial"]:
        ids = [] if _missing(ids) else sorted((int(i) for i in str(ids).split(",")), key=lambda i: (onset_of[i], i))
        values = [value_of[i] for i in ids if not _missing(value_of[i])]
        distinct = list(dict.fromkeys(values))
        if overlap == "all":
            out.append(tuple(values) if values or not ids else _NA)
        elif not ids:
            out.append(None)
        elif not values:
            out.append(_NA)
        elif len(distinct) == 1 or overlap == "first":
            out.append(values[0])
        elif overlap == "drop":
            out.append(_DROP)
            dropped += 1
        else:
            n_overlap += 1
            example = example or ", ".join(f"{i} ({value_of[i]})" for i in ids)
    if n_overlap:
        raise ValueError(f"{run.folder / run.stem}_samples.tsv: {n_overlap} kept volume(s) lie inside trials with "
                         f"different {y!r} (e.g. trials {example}); pass overlap='first' (the trial that started "
                         "first), 'drop' (leave those volumes out) or 'all' (a tuple of values per volume).")
    return out, dropped


_NA, _DROP = object(), object()  # markers: y is n/a (rows left out) / an overlap left out


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


def _trial_offsets(run: Run) -> tuple[float, ...] | None:
    """The times after onset (s) of a run's trial segments: the sidecar's ``TrialOffsets`` (not recorded: one per
    TR from the window's start); None without segments (reported when its rows are read)."""
    trials = run.meta.get("Trials") or {}
    if trials.get("TrialOffsets") is not None:
        return tuple(round(float(t), 6) for t in trials["TrialOffsets"])
    if run.trials is None:
        return None
    n, tr = np.asarray(run.trials).shape[1], float(run.meta.get("RepetitionTime") or np.nan)
    return tuple(round(float(t), 6) for t in float((trials.get("TrialWindow") or [0.0])[0]) + tr * np.arange(n))


def _check_trial_offsets(runs: list[Run]) -> None:
    """Position k of ``kind="trials"`` is one time after onset only if every run has the same offsets: refuse
    runs whose segments are sampled at other offsets (another RepetitionTime), naming two of them."""
    known = [(run, offsets) for run in runs if (offsets := _trial_offsets(run)) is not None]
    for run, offsets in known[1:]:
        first, first_offsets = known[0]
        if offsets != first_offsets:
            raise ValueError(
                f"{run.stem} has its trial segments at {list(offsets)} s after onset (RepetitionTime "
                f"{run.meta.get('RepetitionTime')} s), {first.stem} at {list(first_offsets)} s (RepetitionTime "
                f"{first.meta.get('RepetitionTime')} s): one position of the segments would be another time in "
                "each run, so they are not stacked; select runs with one RepetitionTime (e.g. subject=... or "
                "session=...) or load them separately (kind='betas' does not depend on the offsets).")


def _check_joined_models(runs: list[Run]) -> None:
    """Runs of one participant and task whose betas came from joined trial models of different run sets (the
    sidecar's ``Trials.TrialModelRuns``: two invocations at once, a run refitted after another left the dataset) are
    estimates of different models: refuse them, naming two runs and their model's runs."""
    from bidsapp.core.trial_fit import join_key

    seen: dict[str, tuple[Run, list]] = {}
    for run in runs:
        members = sorted(map(str, (run.meta.get("Trials") or {}).get("TrialModelRuns") or []))
        if not members:
            continue  # per-run estimates (lss, lsa)
        first, theirs = seen.setdefault(join_key(run.entities), (run, members))
        if members != theirs:
            raise ValueError(
                f"{run.stem} has trial estimates from a joined model of the runs {members}, {first.stem} from one of "
                f"{theirs}: they are estimates of different models, so they are not stacked; remove the outputs of a "
                "run that is no longer in the dataset, or select the runs of one model (run=...), or rerun the "
                "participant level for all the runs of that participant and task in one invocation.")


def _check_one_fit(runs: list[Run]) -> None:
    """Runs of one joined model must come from one fit of it: every input file they record (their own, the other
    runs' under ``trial_model_<run>_<role>``, a file they share such as an inherited events file) has one checksum
    in all their sidecars. An invocation stopped between writing two runs of a model (or a run that failed after
    the fit) leaves a run of the new fit beside one of the old: refuse them, naming the file whose checksums
    differ."""
    from bidsapp.core.trial_fit import join_key

    seen: dict[tuple, tuple[str, Run]] = {}  # (model, file) -> the checksum a run records, and that run
    for run in runs:
        members = tuple(sorted(str(m) for m in (run.meta.get("Trials") or {}).get("TrialModelRuns") or []))
        if len(members) < 2:
            continue  # per-run estimates, or a model of one run
        for entry in run.meta.get("Sources") or []:
            uri, sha = (entry.get("URI"), entry.get("SHA256")) if isinstance(entry, dict) else (None, None)
            if uri is None or sha is None:
                continue
            first_sha, first = seen.setdefault((join_key(run.entities), members, uri), (sha, run))
            if sha != first_sha:
                raise ValueError(
                    f"{run.stem} and {first.stem} record {uri} with other checksums: the two runs' estimates come "
                    "from two fits of their joined trial model (an invocation stopped between writing them, or a "
                    "run failed after the fit), so they are not stacked; rerun the participant level for that "
                    "participant and task.")


def _code_of(meta: dict) -> str:
    """``bidsapp 0.1.0 (CodeFingerprint 1a5071fda9cf)``: the version and code fingerprint a run's sidecar records."""
    version = (meta.get("SoftwareVersions") or {}).get("bidsapp")
    if version is None:
        version = next((g.get("Version") for g in meta.get("GeneratedBy") or []
                        if isinstance(g, dict) and g.get("Name") == "bidsapp"), None)
    code = meta.get("CodeFingerprint")
    return f"bidsapp {version or '(version not recorded)'} (CodeFingerprint {code[:12] if code else 'not recorded'})"


def _warn_mixed_code(runs: list[Run]) -> None:
    """One warning when the runs were made by different bidsapp versions or code (they are still stacked)."""
    by_code: dict[str, list[str]] = {}
    for run in runs:
        by_code.setdefault(_code_of(run.meta), []).append(run.stem)
    if len(by_code) > 1:
        listing = "; ".join(f"{code}: {len(stems)} run(s), e.g. {stems[0]}" for code, stems in by_code.items())
        warnings.warn(f"the {len(runs)} runs were made by different bidsapp code ({listing}); the participant level "
                      "recomputes a run when its code changes, since its numbers may differ: rerun it for the runs "
                      "of the older code to stack the outputs of one code.", stacklevel=4)


def _complete_runs(output_dir: Path, entities: dict, verify: bool) -> list[Run]:
    """The matching runs whose outputs are complete (the others left out with one warning), all of one
    variant (space, atlas, desc) and made with one configuration."""
    match = _runs(Path(output_dir), entities)
    problems = [(c, reader.problem(c.sidecar, verify)) for c in match]
    incomplete = [(c, why) for c, why in problems if why is not None]
    match = [c for c, why in problems if why is None]
    if incomplete:
        listing = "; ".join(f"{c.stem} ({why})" for c, why in incomplete)
        if not match:
            raise FileNotFoundError(f"every matching run is incomplete: {listing}; rerun the participant level.")
        warnings.warn(f"{len(incomplete)} matching run(s) left out, their outputs are incomplete: {listing}; rerun "
                      "the participant level for them.", stacklevel=3)
    mixed = {k: v for k, v in _varying(match).items() if k not in _RUN_ENTITIES}
    if mixed:
        key, values = next(iter(mixed.items()))
        raise LookupError(f"the {len(match)} matching runs mix {key} values {values}: their columns are not "
                          f"comparable; add {key}=... (one of {values}) to choose one.")
    runs = [reader.read_run(c.sidecar, entities=c.entities) for c in match]  # checksums, if asked, verified above
    reader.check_configurations(runs)
    _warn_mixed_code(runs)
    return runs


def dataset(output_dir: str | Path, kind: str = "betas", *, y: str = "trial_type", drop_invalid: bool = True,
            overlap: str = "error", y_dtype=None, verify: bool = False, measure: str = "correlation",
            bids_dir: str | Path | None = None, **entities) -> Dataset:
    """Stack the matching runs (and sessions) into ``X``, ``y``, ``groups`` and a per-row table.

    Before stacking, the runs are checked: they must have been made with the same settings (every
    parameter that changes the numbers, the atlas file's checksum, the trial window and estimates)
    and share one column space, else an error names the runs and the differing parameters. Runs whose
    outputs are incomplete (no sidecar, a listed file missing, a size that differs from the sidecar)
    are left out with one warning that names them and why. Runs made by different bidsapp versions or code
    (the sidecar's ``CodeFingerprint``) are stacked with one warning naming each and its number of runs. With
    ``kind="trials"``, the runs' trial segments must be sampled at the same times after onset (the sidecar's
    ``Trials.TrialOffsets``, which follow the RepetitionTime), else an error names two runs and their offsets. With
    ``kind="betas"``, the runs of one participant and task whose estimates come from a joined trial model must come
    from one fit of it (the same runs, ``Trials.TrialModelRuns``, and the same checksums of their inputs in every
    run's ``Sources``), else an error names two runs.

    Parameters
    ----------
    output_dir : str or Path
        The bidsapp output folder.
    kind : {"betas", "trials", "timeseries", "connectivity"}
        ``betas``: one row per trial (LSS or LSA estimates, (n, n_features); ``--hrf fir``: one row per trial
        and FIR bin, with the bin's ``fir_offset`` in the table); ``trials``: one row per trial
        segment, (n, n_offsets, n_features); ``timeseries``: one row per kept volume; ``connectivity``: one
        row per run, the upper triangle (above the diagonal, row by row) of its ``--connectivity`` matrix
        ``measure``, ``y`` from the raw dataset's ``participants.tsv`` and ``groups`` the participant; the
        table holds the run's entities and QC metrics, ``features`` the edges (``node_a``, ``node_b``).
        Edges of regions left out by ``--min-coverage`` are NaN. Runs whose participant has no ``y`` (not listed,
        ``n/a``, empty, ``NaN``) are left out with a warning, before the shared regions are chosen.
    y : str
        Column of ``table`` used as the target (default ``trial_type``; ``source`` and the entity columns such as
        ``subject`` or ``session`` too). Columns of events.tsv are text exactly as
        written (``001`` stays ``"001"``); rows whose ``y`` is n/a are left out, with a warning counting them.
        For ``timeseries``, a volume's ``y`` comes from the trial(s) it lies in (None outside trials).
    drop_invalid : bool
        Leave out trials whose ``valid`` is False (NaN or unreliable estimates); not for timeseries.
    overlap : {"error", "first", "drop", "all"}
        ``timeseries`` only: volumes inside several trials whose ``y`` differ raise an error (default),
        take the ``y`` of the trial that started first, are left out (with a warning), or get a tuple
        of every trial's value ("all": every ``y`` is then a tuple, empty outside trials).
    y_dtype : numpy dtype, optional
        Convert ``y`` (e.g. ``int`` for numeric stimulus ids); default: text as written.
    verify : bool
        Re-hash every output file and leave out runs whose checksums differ from their sidecar.
    measure : str
        ``connectivity`` only: ``correlation``, ``partial-correlation`` or ``covariance`` (or their ``meas-``
        labels, e.g. ``PearsonCorrelation``).
    bids_dir : str or Path, optional
        ``connectivity`` only: the raw BIDS dataset whose ``participants.tsv`` gives ``y`` (default: the raw
        dataset named in the output's ``dataset_description.json``).
    **entities
        As in :func:`load`; ``space``, ``desc`` and ``atlas`` must end up single-valued
        (``atlas=None``: the voxel or grayordinate outputs).

    Returns
    -------
    Dataset
        ``X`` (in memory), ``y``, ``groups`` (the run each row comes from, for leave-one-run-out),
        ``table`` (the per-row table plus the run's entities; an events.tsv column with the name of one of
        ours is kept as ``events_<name>``), ``features``, ``to_image(values)``, and ``runs`` and ``qc``: the
        runs stacked, in the order of ``X`` (a run left with no row, its every ``y`` n/a, is not stacked: a
        warning names it, and its columns do not narrow the shared ones).

    Raises
    ------
    LookupError
        No run matches, the runs mix spaces / denoising / atlases, or two outputs have the same entities.
    ValueError
        Unknown kind, target column or overlap rule; runs made with different settings; masks on
        different grids; overlapping trials with ``overlap="error"``; ``kind="trials"`` with runs whose trial
        offsets differ; no row with a ``y``; a ``participants.tsv`` whose ``participant_id`` values lack the
        ``sub-`` prefix or that lists a participant on two rows.
    FileNotFoundError
        Every matching run is incomplete.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind={kind!r}: use one of {list(_KINDS)}.")
    if overlap not in OVERLAP_RULES:
        raise ValueError(f"overlap={overlap!r}: use one of {list(OVERLAP_RULES)}.")
    runs = _complete_runs(Path(output_dir), entities, verify)
    if y in _RUN_ENTITIES and not any(y in run.entities for run in runs):
        raise ValueError(f"y={y!r}: no run's name has this entity (e.g. {runs[0].stem}); choose a column of the "
                         "table, or an entity the runs have.")
    if kind == "trials":
        _check_trial_offsets(runs)
    if kind == "betas":
        _check_joined_models(runs)
        _check_one_fit(runs)
    if kind == "connectivity":
        return _connectivity_dataset(runs, Path(output_dir), y=y, y_dtype=y_dtype, measure=measure,
                                     bids_dir=bids_dir)
    return _stacked_dataset(runs, kind, y=y, y_dtype=y_dtype, overlap=overlap, drop_invalid=drop_invalid)


def _connectivity_dataset(runs: list[Run], output_dir: Path, *, y: str, y_dtype, measure: str,
                          bids_dir: str | Path | None) -> Dataset:
    """``kind="connectivity"``: the runs whose participant has a ``y`` in ``participants.tsv`` (the others left
    out with a warning before the columns are chosen), one row each; ``runs`` and ``qc`` name those runs, in the
    order of ``X``."""
    from bidsapp.outputs.connectomes import connectivity_rows, participant_values, participants_file, with_target

    path = participants_file(output_dir, bids_dir)
    targets = participant_values(path, y)
    runs = [runs[k] for k in with_target(runs, targets, y, path)]
    picks, _ = _column_space(runs)
    X, target, table, edges = connectivity_rows(runs, picks, measure=measure, y=y, output_dir=output_dir,
                                                bids_dir=bids_dir, run_entities=_RUN_ENTITIES, short=_SHORT,
                                                targets=targets)
    return Dataset(X=X, y=target if y_dtype is None else target.astype(y_dtype),
                   groups=table["participant_id"].to_numpy(), table=table, features=edges,
                   runs=[r.stem for r in runs], mask_file=runs[0].mask_file, dseg_file=runs[0].dseg_file,
                   kind=runs[0].kind, qc=_qc_table(runs))


def _stacked_dataset(runs: list[Run], kind: str, *, y: str, y_dtype, overlap: str, drop_invalid: bool) -> Dataset:
    """``betas``, ``trials`` or ``timeseries``: the rows of every run whose ``y`` is known, over the columns of the
    runs that have such rows (a run left with none is not stacked, with a warning: ``runs`` and ``qc`` name the
    runs of ``X``, in its order)."""
    import pandas as pd

    stacked, arrays, tables, targets = [], [], [], []
    n_missing = n_dropped = 0
    for run in runs:
        data, table, values, dropped = _run_rows(run, kind, y, overlap, drop_invalid)
        keep = np.array([v is not _NA and v is not _DROP for v in values], dtype=bool)
        n_missing += sum(v is _NA for v in values)
        n_dropped += dropped
        if keep.any():
            stacked.append(run)
            arrays.append((data, keep))
            tables.append(table[keep])
            targets += [v for v, k in zip(values, keep) if k]
    if n_missing:
        warnings.warn(f"{n_missing} row(s) whose {y!r} is n/a are left out (y is missing for them).", stacklevel=3)
    if n_dropped:
        warnings.warn(f"{n_dropped} volume(s) inside trials with different {y!r} are left out (overlap='drop').",
                      stacklevel=3)
    _warn_runs_without_rows(runs, stacked, y)
    picks, common = _column_space(stacked)
    blocks = []
    for k, cols in enumerate(picks):
        data, keep = arrays[k]
        arrays[k] = None  # the run's whole array is no longer needed
        blocks.append(data[keep][..., cols])
    table = pd.concat(tables, ignore_index=True)
    features = stacked[0].features.iloc[picks[0]].reset_index(drop=True)
    return Dataset(X=np.concatenate(blocks), y=_target_array(targets, y_dtype), groups=table["source"].to_numpy(),
                   table=table, features=features, runs=[r.stem for r in stacked],
                   mask_file=stacked[0].mask_file, dseg_file=stacked[0].dseg_file, _mask=common,
                   kind=stacked[0].kind, qc=_qc_table(stacked))


def _warn_runs_without_rows(runs: list[Run], stacked: list[Run], y: str) -> None:
    """One warning naming the runs left with no row (every ``y`` n/a, every trial invalid), which are not
    stacked (not in ``runs``, ``qc``, nor the choice of columns); an error when no run is left."""
    if not stacked:
        raise ValueError(f"none of the {len(runs)} matching run(s) has a row with a {y!r} value (n/a, invalid "
                         f"trials or volumes left out), e.g. {runs[0].stem}; nothing to stack: choose another y "
                         "or other runs.")
    kept = {r.stem for r in stacked}
    names = [r.stem for r in runs if r.stem not in kept]
    if names:
        warnings.warn(f"{len(names)} run(s) have no row left (their {y!r} is n/a, or their trials invalid) and are "
                      f"not stacked, nor in the dataset's runs and qc: {', '.join(names[:5])}"
                      f"{' ...' if len(names) > 5 else ''}.", stacklevel=4)


def _run_rows(run: Run, kind: str, y: str, overlap: str, drop_invalid: bool) -> tuple[np.ndarray, object, list, int]:
    """One run's rows of a kind: the array, its table (with ``source`` and the run's entities first), the ``y``
    of each row (``_NA``/``_DROP``: left out) and the number of volumes ``overlap="drop"`` left out."""
    data, table = _rows(run, kind, drop_invalid and kind != "timeseries")
    table = table.rename(columns={c: f"events_{c}" for c in table.columns if c in _OURS})
    source = stem_of_entities((k, run.entities[k]) for k in _RUN_ENTITIES if k in run.entities)
    for key in reversed([k for k in _RUN_ENTITIES if k in run.entities]):
        table.insert(0, key, run.entities[key])
    table.insert(0, "source", source)
    values, dropped = _targets(run, kind, table, y, overlap)
    return data, table, values, dropped


#: the table columns bidsapp adds to every row (an events.tsv column of one of these names is ``events_<name>``)
_OURS = ("source", *_RUN_ENTITIES)


def _targets(run: Run, kind: str, table, y: str, overlap: str) -> tuple[list, int]:
    """The ``y`` of each row of a run's table (its entity columns included) and the volumes left out.

    ``y`` is a column of the table (``source`` and the entities too), or for ``timeseries`` a column of the
    trials each volume lies in (``_trials.tsv``).
    """
    trials = run.trials_table
    if kind == "timeseries" and y not in _OURS and (
            y == "trial_type" or (trials is not None and y in trials and y not in table)):
        return _volume_targets(run, table, y, overlap)
    if y not in table and y in _RUN_ENTITIES:  # an entity this run's name lacks (no session): n/a, as in the
        return [_NA] * len(table), 0  # stacked table (left out, counted in the warning)
    if y not in table:
        extra = [c for c in trials.columns if c not in table] if kind == "timeseries" and trials is not None else []
        raise ValueError(f"y={y!r} is not a column of the {kind} table; columns: {list(table.columns)}"
                         + (f", or a column of the trials each volume lies in: {extra}" if extra else "") + ".")
    values = [None if _missing(v) else v for v in table[y].tolist()]
    return [_NA if v is None and kind != "timeseries" else v for v in values], 0


def _target_array(targets: list, y_dtype) -> np.ndarray:
    """``y`` as an array: of ``y_dtype`` when given, numeric when every value is a number, else objects."""
    target = np.empty(len(targets), dtype=object)
    target[:] = targets
    if y_dtype is not None:
        return target.astype(y_dtype)
    if targets and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in targets):
        return target.astype(np.result_type(*{type(v) for v in targets}))  # one of our numeric columns
    return target


def _qc_table(runs: list[Run]):
    """One row per run: its stem and QC metrics (the ``group_runs.tsv`` columns; n/a for older outputs)."""
    import pandas as pd

    from bidsapp.core.qc import qc_values

    return pd.DataFrame([{"run": r.stem, **qc_values(r.meta)} for r in runs])
