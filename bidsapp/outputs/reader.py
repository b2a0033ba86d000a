"""The one reader of a run's outputs: its sidecar, which files it lists, their sizes and checksums, the rows,
the samples and features tables, the trial arrays and the mask.

:func:`read_run` is used by the public loader (:func:`bidsapp.load`, :func:`bidsapp.dataset`) and the group level
(``group_runs.tsv``, intersection masks, the denoising benchmark); :func:`read_run_tables` by the participant
report: both find a run's files with :func:`run_files` and check them with the same counts, so that they read
the same values and refuse the same incomplete or inconsistent outputs with the same message. The report's reader
keeps the tables as text (:class:`Table`, no pandas: importing pandas and parsing a voxel run's features table, a
row per voxel, cost 0.3 s of a 1 s page).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bidsapp.bids.naming import entities_of, is_label, variant_of
from bidsapp.outputs import writers

#: the ending of a run's sidecar (written last: a run without it is incomplete)
SIDECAR_ENDING = "_timeseries.json"
#: file endings of a run's rows (the sidecar ``_timeseries.json`` is written last, so a run may lack it)
ROW_ENDINGS = (SIDECAR_ENDING,) + tuple(f"_{ending}" for ending in writers.ROW_FILES)
_MASK_ENDINGS = tuple(f"_{ending}" for ending in writers.get("mask").files)


def output_files(output_dir: Path, ending: str) -> list[Path]:
    """The files ``*<ending>`` of the runs laid out as bidsapp writes them, ``sub-<label>[/ses-<label>]/func/``,
    sorted.

    Only participant folders named ``sub-<label>`` (a BIDS label: letters and digits) are read, and only the files
    whose own ``sub`` (and ``ses``) entity is their folder's: a copy such as ``sub-01_old`` is not another set of
    runs (the loader, the group level and ``--replace-outputs`` see the same runs).
    """
    found = []
    for participant in Path(output_dir).glob("sub-*"):
        label = participant.name[len("sub-"):]
        if not (participant.is_dir() and is_label(label)):
            continue
        for path in [*participant.glob(f"func/*{ending}"), *participant.glob(f"ses-*/func/*{ending}")]:
            stem = path.name[: -len(ending)]
            session = path.parent.parent.name[len("ses-"):] if path.parent.parent != participant else None
            if stem.startswith(f"sub-{label}_") and entities_of(stem).get("session") == session:
                found.append(path)
    return sorted(found)


#: entities that are indices: ``run-1`` and ``run-01`` name one run
INDEX_ENTITIES = ("run", "echo")
#: entities that name one run of the source data (pybids names; the rest name a processing of it)
RUN_ENTITIES = ("subject", "session", "task", "acquisition", "ceagent", "reconstruction", "direction", "run",
                "echo", "part")


def run_identity(entities: dict) -> tuple:
    """A run's entities as compared to find one run written twice (indices as integers)."""
    return tuple(sorted((k, str(int(v)) if k in INDEX_ENTITIES and str(v).isdigit() else v)
                        for k, v in entities.items()))


def check_unique(sidecars: list[Path]) -> None:
    """Refuse two sidecars whose names have the same entities (``run-1`` and ``run-01``): one run written twice,
    whose outputs are never both read (:class:`LookupError` naming both)."""
    seen: dict[tuple, Path] = {}
    for sidecar in sidecars:
        entities = entities_of(Path(sidecar).name[: -len(SIDECAR_ENDING)])
        other = seen.setdefault(run_identity(entities), Path(sidecar))
        if other != Path(sidecar):
            shown = ", ".join(f"{k}={v!r}" for k, v in entities.items())
            raise LookupError(f"{other} and {sidecar} have the same entities ({shown}): one run cannot have two "
                              "sets of outputs, so neither is read; move or delete the one that is not the run's "
                              "output.")


def check_configurations(runs: list, not_done: str = "they are not stacked") -> None:
    """Runs made with different settings (or atlas files) are never used together: one :class:`ValueError`
    naming two of them and the parameters that differ (their sidecars'
    :func:`bidsapp.outputs.transaction.configuration_of`).

    Parameters
    ----------
    runs : list of Run
        Runs read by :func:`read_run` (their ``stem`` and ``meta``).
    not_done : str
        What is refused, in the message (the loader: ``they are not stacked``).
    """
    from bidsapp.outputs.transaction import configuration_of, describe_differences, differing_parameters

    first = configuration_of(runs[0].meta)
    for run in runs[1:]:
        diff = differing_parameters(first, configuration_of(run.meta))
        if not diff:
            continue
        variant = variant_of(run.stem)
        if variant == variant_of(runs[0].stem):
            # one name, two meanings (say, two invocations at once): no entity tells them apart
            way_out = (f"both are named {variant}, so no entity tells them apart: rerun the participant level for "
                       "the runs to redo with one set of settings and --replace-outputs")
        else:
            way_out = ("select one variant with entities (desc=..., atlas=...) or rerun the participant level "
                       "with one set of settings")
        raise ValueError(f"{run.stem} was made with other settings than {runs[0].stem}: "
                         f"{describe_differences(diff, 'in the first', 'in the second')}; their numbers are not "
                         f"comparable, so {not_done}: {way_out}.")


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


#: why a run is incomplete when one of its files is a dangling link (a DataLad / git-annex output not fetched)
_UNFETCHED = ("{} is a symbolic link to a missing file: in a DataLad or git-annex dataset, fetch the outputs first "
              "(datalad get)")


def problem(sidecar: Path, verify: bool = False) -> str | None:
    """Why a run's outputs are incomplete (None when complete): no sidecar, a listed file missing,
    a size (or, with ``verify``, a checksum) that differs from the sidecar."""
    from bidsapp.core.files import sha256sum

    sidecar = Path(sidecar)
    if sidecar.is_symlink() and not sidecar.exists():
        return _UNFETCHED.format(sidecar.name)
    if not sidecar.exists():
        return "no sidecar: the run was interrupted or is being written"
    meta = read_sidecar(sidecar)
    if meta is None:
        return "its sidecar is unreadable"
    for entry in meta.get("OutputFiles") or []:
        if not isinstance(entry, dict):
            continue
        path = sidecar.parent / entry.get("Path", "")
        if path.is_symlink() and not path.exists():
            return _UNFETCHED.format(entry.get("Path"))
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


class Table:
    """A TSV table of a run's outputs read without pandas: its header, its number of rows, and a column's values
    on request (only then are the rows split into fields), with the values :func:`read_table` gives.

    Parameters
    ----------
    path : Path
        A plain (not gzipped) UTF-8 TSV; blank lines are skipped, as pandas does.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        data = self.path.read_bytes().removeprefix(b"\xef\xbb\xbf")  # split into rows only when a column is asked
        start = 0
        while True:  # the header: the first line that is not blank
            end = data.find(b"\n", start)
            line = data[start:] if end < 0 else data[start:end]
            if line.strip():
                break
            if end < 0:
                raise ValueError(f"{self.path}: empty TSV file; it needs a header row.")
            start = end + 1
        self.header = line.rstrip(b"\r").decode("utf-8").split("\t")
        self._data = data[start:] if start else data
        self._lines: list[str] | None = None
        self._columns: dict[str, list[str]] = {}
        self._n_rows = self._count_rows()

    def _count_rows(self) -> int:
        """Non-blank lines after the header: counted in C on a voxel run's table (250,000 rows in ~10 ms)."""
        data = self._data
        if b"\n\n" in data or (b"\r" in data[:data.find(b"\n") + 1] and b"\n\r\n" in data):
            return sum(1 for line in data.split(b"\n") if line.strip()) - 1
        return data.count(b"\n") + (not data.endswith(b"\n")) - 1

    def __len__(self) -> int:
        return self._n_rows

    def __contains__(self, name: str) -> bool:
        return name in self.header

    def text(self, name: str) -> list[str]:
        """The column's values as written (``n/a`` included).

        The rows are split into lines once and checked for their number of fields (tabs counted in C); each
        column asked for is then cut from the lines alone (``split`` up to that field): a grayordinate run's
        ``structure`` column of 91,282 rows in ~25 ms, where splitting every field of every row took ~0.2 s.
        """
        if name not in self.header:
            raise KeyError(f"{self.path}: no column {name!r} (columns: {', '.join(self.header)})")
        if self._lines is None:
            lines = [line.rstrip("\r") for line in self._data.decode("utf-8").split("\n") if line.strip()][1:]
            tabs = len(self.header) - 1
            bad = next((i for i, line in enumerate(lines) if line.count("\t") != tabs), None)
            if bad is not None:
                raise ValueError(f"{self.path}: line {bad + 2} has {lines[bad].count(chr(9)) + 1} fields but the "
                                 f"header has {len(self.header)}; the run's outputs are inconsistent, rerun it.")
            self._lines = lines
        if name not in self._columns:
            col = self.header.index(name)
            self._columns[name] = [line.split("\t", col + 1)[col] for line in self._lines]
        return list(self._columns[name])

    def floats(self, name: str) -> np.ndarray:
        """The column as float64 (``n/a``: NaN)."""
        try:
            return np.array([np.nan if v == "n/a" else float(v) for v in self.text(name)], dtype=np.float64)
        except ValueError as err:
            raise ValueError(f"{self.path}: column {name!r} is not numeric ({err}).") from None

    def flags(self, name: str) -> np.ndarray:
        """The column as bool (``True`` / ``False``, as pandas reads them)."""
        values = {"True": True, "true": True, "TRUE": True, "False": False, "false": False, "FALSE": False}
        text = self.text(name)
        wrong = next((v for v in text if v not in values), None)
        if wrong is not None:
            raise ValueError(f"{self.path}: column {name!r} holds {wrong!r} where True or False is expected.")
        return np.array([values[v] for v in text], dtype=bool)


def rows_shape(path: Path) -> tuple[int, int]:
    """(rows, columns) of a run's array from one of :data:`~bidsapp.outputs.writers.ROW_FILES`, without reading
    its values (a ``.npy`` header; the lines and the header's fields of a ``.tsv.gz``)."""
    import gzip

    path = Path(path)
    if path.name.endswith(".npy"):
        return tuple(np.load(path, mmap_mode="r").shape)
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        columns = len(fh.readline().rstrip("\n").split("\t"))
        return sum(1 for line in fh if line.strip()), columns


class _ListedOutputs:
    """The outputs a run's sidecar lists (for a class with ``folder`` and ``meta``)."""

    @property
    def outputs(self) -> dict[str, Path]:
        """The files the sidecar lists, by name (this generation's outputs)."""
        return {name: self.folder / name for name in listed_outputs(self.meta)}

    def output(self, ending: str) -> Path | None:
        """The listed output whose name ends with ``ending`` (e.g. ``_features.tsv``), None when there is none."""
        return next((p for name, p in self.outputs.items() if name.endswith(ending)), None)


@dataclass
class Run(_ListedOutputs):
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
    fix = "fetch them" if "datalad get" in why else "rerun the participant level for this run"
    return FileNotFoundError(f"{folder / stem}: outputs incomplete ({why}); {fix}.")


@dataclass
class RunPaths:
    """Which files hold a run's outputs: what its sidecar lists and the reader found complete (no table read)."""

    stem: str
    folder: Path
    meta: dict
    rows: Path
    samples: Path
    features: Path
    mask_file: Path
    image_file: Path | None
    kind: str
    #: ``trials`` / ``betas``: the array and its table, when both are listed
    trials: dict[str, tuple[Path, Path]]


def run_files(sidecar: str | Path, *, verify: bool = False) -> RunPaths:
    """The files of a run's outputs named by its sidecar, checked complete (sizes, or checksums with ``verify``).

    Raises
    ------
    FileNotFoundError
        The outputs are incomplete: no sidecar, a listed file missing or changed, no rows, tables or mask.
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
    trials = {k: (output(f"{k}.npy"), output(f"{k}.tsv")) for k in ("trials", "betas")
              if output(f"{k}.npy") and output(f"{k}.tsv")}
    return RunPaths(stem=stem, folder=folder, meta=meta, rows=row_file, samples=output("samples.tsv"),
                    features=output("features.tsv"), mask_file=mask_file, image_file=image_file, kind=kind,
                    trials=trials)


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
    f = run_files(sidecar, verify=verify)
    run = Run(stem=f.stem, folder=f.folder, entities=entities_of(f.stem) if entities is None else entities,
              meta=f.meta, X=writers.read_rows(f.rows), samples=read_table(f.samples),
              features=read_table(f.features), mask_file=f.mask_file, dseg_file=f.image_file, kind=f.kind)
    for kind, (array, table) in f.trials.items():
        setattr(run, kind, np.load(array, mmap_mode="r"))
        setattr(run, f"{kind}_table", read_trial_table(table))
    check_rows(run)
    return run


@dataclass
class RunTables(_ListedOutputs):
    """One run's outputs as the participant page reads them, without pandas: the files of :func:`run_files`,
    the array's shape (its values on request), and the samples and features tables as :class:`Table`.

    Made by :func:`read_run_tables`, with the checks of :func:`read_run` (the same message for the same
    incomplete or inconsistent outputs).
    """

    files: RunPaths
    shape: tuple[int, int]
    samples: Table
    features: Table

    @property
    def stem(self) -> str:
        return self.files.stem

    @property
    def folder(self) -> Path:
        return self.files.folder

    @property
    def meta(self) -> dict:
        return self.files.meta

    @property
    def mask_file(self) -> Path:
        return self.files.mask_file

    @property
    def kind(self) -> str:
        return self.files.kind

    @property
    def X(self) -> np.ndarray:  # noqa: N802 (the name of Run.X)
        """The run's rows, read on request (memory-mapped for ``.npy``)."""
        return writers.read_rows(self.files.rows)

    @property
    def n_volumes(self) -> int:
        """Volumes of the run (rows of ``samples``)."""
        return len(self.samples)

    @property
    def framewise_displacement(self) -> np.ndarray:
        """Framewise displacement of every volume (mm; NaN where n/a, e.g. the first volume)."""
        return self.samples.floats("framewise_displacement")

    @property
    def kept(self) -> np.ndarray:
        """Which volumes are rows of the array (bool, one per volume)."""
        return self.samples.flags("kept")


def read_run_tables(sidecar: str | Path, *, verify: bool = False) -> RunTables:
    """One run's outputs named by its sidecar, read without pandas (:class:`RunTables`), checked as
    :func:`read_run` checks them.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_run`.
    """
    f = run_files(sidecar, verify=verify)
    run = RunTables(files=f, shape=rows_shape(f.rows), samples=Table(f.samples), features=Table(f.features))
    trials = {}
    for kind, (array, table) in f.trials.items():
        rows = Table(table)
        count = len(rows) if kind == "betas" else sum(v != "n/a" for v in rows.text("segment"))
        trials[kind] = (count, np.load(array, mmap_mode="r").shape[0])
    _check_counts(run.folder / run.stem, run.shape, len(run.features),
                  int(run.kept.sum()) if "kept" in run.samples else None, trials)
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
    trials = {}
    if run.betas is not None:
        trials["betas"] = (len(run.betas_table), run.betas.shape[0])
    if run.trials is not None:
        trials["trials"] = (int(run.trials_table["segment"].notna().sum()), run.trials.shape[0])
    kept = int(run.samples["kept"].sum()) if "kept" in run.samples else None
    _check_counts(run.folder / run.stem, run.X.shape, len(run.features), kept, trials)


def _check_counts(where: Path, shape: tuple[int, int], n_features: int, kept: int | None,
                  trials: dict[str, tuple[int, int]]) -> None:
    """The check of :func:`check_rows` on counts: ``trials`` holds, for ``betas`` / ``trials``, the rows of the
    table (the trials with a segment) and the rows of the array."""
    if n_features != shape[1]:
        raise ValueError(f"{where}_features.tsv: {n_features} rows for {shape[1]} columns "
                         "of the array; the run's outputs are inconsistent, rerun it.")
    kept = shape[0] if kept is None else kept
    if kept != shape[0]:
        raise ValueError(f"{where}_samples.tsv: {kept} kept volumes for {shape[0]} rows of the array; the "
                         "run's outputs are inconsistent, rerun it.")
    if "betas" in trials and trials["betas"][0] != trials["betas"][1]:
        raise ValueError(f"{where}_betas.tsv: {trials['betas'][0]} trials for {trials['betas'][1]} rows of "
                         "_betas.npy; the run's outputs are inconsistent, rerun it.")
    if "trials" in trials and trials["trials"][0] != trials["trials"][1]:
        raise ValueError(f"{where}_trials.tsv: {trials['trials'][0]} segments for {trials['trials'][1]} rows of "
                         "_trials.npy; the run's outputs are inconsistent, rerun it.")
