"""Find the inputs of each run with pybids (raw dataset + fMRIPrep derivatives)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from bidsapp.errors import InputError

#: entities that identify a run, in BIDS order (carried over to output names; space is separate)
RUN_ENTITIES = ("subject", "session", "task", "acquisition", "ceagent", "reconstruction",
                "direction", "run", "echo", "part", "cohort", "res", "den")
#: entities of a BOLD in a given space that its confounds and events files do not have
_SPACE_ENTITIES = ("cohort", "res", "den")
#: entities of a BOLD that its events file does not have
_NOT_EVENTS = ("echo", "part") + _SPACE_ENTITIES
_COHORT = re.compile(r"_cohort-([A-Za-z0-9]+)_")
NATIVE_SPACES = ("func", "native", "boldref")
#: fMRIPrep's surface output spaces: CIFTI-2 dtseries (fsLR) and GIFTI func.gii pairs (fsaverage*, fsnative)
GRAYORDINATE_SPACES = ("fsLR", "fsaverage", "fsaverage5", "fsaverage6", "fsnative")
GRAYORDINATE_EXTENSIONS = [".dtseries.nii", ".func.gii"]


@dataclass
class Run:
    """Everything one run needs, found on disk."""

    entities: dict
    space: str | None
    bold: Path
    mask: Path | None
    confounds: Path | None
    confounds_json: Path | None
    events: Path | None
    metadata: dict = field(default_factory=dict)
    metadata_files: list = field(default_factory=list)  # the JSON files the metadata came from, in order
    bold_right: Path | None = None  # GIFTI runs: ``bold`` is the hemi-L func.gii, this the hemi-R one
    surfaces: dict = field(default_factory=dict)  # grayordinate runs: {"L": surf.gii, "R": surf.gii} when found
    surfaces_missing: str | None = None  # grayordinate runs without surfaces: why (none found, other meshes)
    events_search: str = ""  # where an events file was looked for (said when none applies to the run)

    def metadata_source(self, key: str) -> str:
        """The JSON file that gave ``metadata[key]`` (the last one holding that value), else every file the
        metadata came from; for messages about a bad value."""
        for path in reversed(self.metadata_files):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                if json.loads(Path(path).read_text()).get(key, ...) == self.metadata.get(key):
                    return str(path)
        return ", ".join(map(str, self.metadata_files)) or f"{self.bold} (no JSON sidecar)"

    @property
    def label(self) -> str:
        """Short BIDS-like name: sub-01_ses-1_task-x_run-1 (with every identifying entity)."""
        short = {"subject": "sub", "session": "ses", "acquisition": "acq", "ceagent": "ce",
                 "reconstruction": "rec", "direction": "dir"}
        return "_".join(f"{short.get(k, k)}-{v}" for k, v in self.entities.items())


def _strip(labels) -> list[str]:
    return [str(x)[4:] if str(x).startswith(("sub-", "ses-")) else str(x) for x in labels or ()]


def _indexer(participants: list[str]):
    """A pybids indexer that skips non-BIDS folders and other participants."""
    from bids import BIDSLayoutIndexer

    ignore: list = ["code", "sourcedata", "stimuli", "derivatives", "models", re.compile(r"/\.")]
    if participants:
        alts = "|".join(re.escape(p) for p in participants)
        ignore.append(re.compile(rf"^/sub-(?!(?:{alts})/?$)[^/]+/?$"))
    return BIDSLayoutIndexer(validate=False, ignore=ignore, index_metadata=False)


def index(root: Path, participants: list[str], *, derivative: bool):
    """Index a BIDS folder without validation and only for the given participants (a ``BIDSLayout``)."""
    from bids import BIDSLayout

    config = ["bids", "derivatives"] if derivative else ["bids"]
    return BIDSLayout(str(root), validate=False, config=config, indexer=_indexer(participants),
                      is_derivative=derivative)


def _entities(bids_file) -> dict:
    """pybids entities of a file plus ``cohort``, which pybids does not parse."""
    ents = dict(bids_file.get_entities())
    cohort = _COHORT.search(Path(bids_file.path).name)
    if cohort:
        ents["cohort"] = cohort.group(1)
    return ents


def _key(ents: dict, drop: tuple = ()) -> tuple:
    """Hashable run identity: the run entities present (as strings)."""
    return tuple((k, str(ents[k])) for k in RUN_ENTITIES if k in ents and k not in drop)


def run_identity(ents: dict) -> tuple:
    """A run's identity across spaces: its entities but ``space``, ``res``, ``den`` and ``cohort``, as strings (the
    entities of its outputs' names give the same)."""
    return _key(ents, drop=_SPACE_ENTITIES)


def _lookup(table: dict, ents: dict, drop: tuple, *, space: bool = False):
    """The file of a run in ``table``: with every entity, then without ``echo`` and ``part`` (fMRIPrep
    writes one confounds file and one brain mask per run, not per echo or part)."""
    for extra in ((), ("echo",), ("part",), ("echo", "part")):
        key = _key(ents, drop=drop + extra)
        found = table.get((key, ents.get("space")) if space else key)
        if found is not None:
            return found
    return None


def _read_json(path: Path) -> dict:
    _present(path)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable JSON sidecar ({exc}).") from exc


def _present(path: Path) -> bool:
    """Whether ``path`` exists; a dangling symbolic link (a DataLad / git-annex file whose content was not
    fetched) is one error line naming it and the fix, never a file silently taken as absent."""
    if path.exists():
        return True
    if path.is_symlink():
        from bidsapp.core.files import missing_file_line

        raise InputError(missing_file_line(path))
    return False


def _inherited_metadata(run_ents: dict, sidecars: list[tuple[dict, Path]]) -> tuple[dict, list[Path]]:
    """BIDS inheritance: apply every ``*_bold.json`` whose entities are a subset of the run's,
    from the least to the most specific. Returns the metadata and the files it came from."""
    run = dict(_key(run_ents))
    matching = [(len(e), p) for e, p in sidecars if all(run.get(k) == v for k, v in e.items())]
    meta: dict = {}
    files = [path for _, path in sorted(matching, key=lambda m: (m[0], len(str(m[1]))))]
    for path in files:
        meta.update(_read_json(path))
    return meta, files


def collect_runs(
    bids_dir: Path,
    fmriprep_dir: Path,
    *,
    participants=(),
    sessions=(),
    tasks=(),
    runs=(),
    space: str = "MNI152NLin2009cAsym",
    need_confounds: bool = True,
    bold_desc: str = "preproc",
    den: str | None = None,
    surface: str | None = None,
    only: Collection[tuple] | None = None,
) -> list[Run]:
    """Query raw + fMRIPrep layouts and return one :class:`Run` per matching BOLD.

    ``only``: the identities (:func:`run_identity`) of the runs to return; the files of other matching runs are not
    read (e.g. an unfetched session).

    Raises
    ------
    InputError
        Missing bids_dir or fMRIPrep folder (66), unknown participant (66), no run matching
        the filters (18), missing mask or confounds (66).
    """
    bids_dir, fmriprep_dir = Path(bids_dir), Path(fmriprep_dir)
    _check_folders(bids_dir, fmriprep_dir)
    participants = _strip(participants)
    der = index(fmriprep_dir, participants, derivative=True)
    raw = None
    _present(fmriprep_dir / "dataset_description.json")  # unfetched: an error, not a dataset without a version
    if _present(bids_dir / "dataset_description.json") and bids_dir.resolve() != fmriprep_dir.resolve():
        raw = index(bids_dir, participants, derivative=False)
    _check_participants(der, fmriprep_dir, participants)
    query = _bold_query(participants, sessions, tasks, runs, den, space, bold_desc)
    bolds = _find_bolds(der, query, space, fmriprep_dir, bold_desc)
    tables = _RunTables.of(der, raw)
    wants_surfaces = space in GRAYORDINATE_SPACES and surface not in (None, "none")
    surfaces = _surfaces(der, surface) if wants_surfaces else {}
    out = []
    seen: dict = {}
    right = _pair_hemispheres(bolds)
    for f in sorted(bolds, key=lambda f: f.path):
        ents = _entities(f)
        if ents.get("hemi") == "R" or (only is not None and run_identity(ents) not in only):
            continue  # joined to its hemi-L file, or not asked for
        bold = Path(f.path)
        _check_once(seen, _key(ents), ents, bold)
        confounds = _lookup(tables.confounds, ents, _SPACE_ENTITIES)
        if confounds is None and need_confounds:
            raise InputError(f"{bold.name}: confounds file (desc-confounds_timeseries.tsv) not found. "
                             "Use --denoise none, or rerun fMRIPrep.")
        conf_json = None
        if confounds is not None:
            cand = confounds.with_name(confounds.name[: -len(".tsv")] + ".json")
            conf_json = cand if _present(cand) else None
        meta, meta_files = _run_metadata(bold, ents, tables.sidecars, right.get(bold))
        folder = _folder(bold, Path(der.root))
        out.append(Run(entities=dict(_key(ents)), space=ents.get("space"), bold=bold,
                       mask=_lookup(tables.masks, ents, (), space=True), confounds=confounds,
                       confounds_json=conf_json, events=_events_of(bold, ents, folder, tables.events),
                       metadata=meta, metadata_files=meta_files, bold_right=right.get(bold),
                       surfaces=_run_surfaces(surfaces, ents),
                       events_search=_events_search(folder, tables.events_roots)))
        if wants_surfaces and not out[-1].surfaces:
            out[-1].surfaces_missing = _why_no_surfaces(surfaces, ents, surface)
    return out


def _check_folders(bids_dir: Path, fmriprep_dir: Path) -> None:
    """bids_dir and the fMRIPrep folder exist (one line naming the argument otherwise)."""
    if bids_dir.exists() and not bids_dir.is_dir():
        raise InputError(f"{bids_dir}: bids_dir is a file, not a folder (the first argument: the BIDS dataset, or "
                         "the fMRIPrep folder itself); check the path.")
    if not bids_dir.is_dir():  # the first argument: say so, not that the fMRIPrep folder below it is missing
        raise InputError(f"{bids_dir}: bids_dir not found (the first argument: the BIDS dataset, or the fMRIPrep "
                         "folder itself); check the path.")
    if not fmriprep_dir.is_dir():
        raise InputError(
            f"{fmriprep_dir}: fMRIPrep folder not found. Run fMRIPrep first, or point to its "
            "output with --fmriprep-dir."
        )


def _check_participants(der, fmriprep_dir: Path, participants: list[str]) -> None:
    found = set(der.get_subjects())
    for p in participants:
        if p not in found:
            available = sorted(d.name[4:] for d in fmriprep_dir.glob("sub-*") if d.is_dir())
            raise InputError(
                f"{fmriprep_dir}: participant '{p}' not found (available: {', '.join(available) or 'none'})."
            )


def _bold_query(participants, sessions, tasks, runs, den, space: str, bold_desc: str) -> dict:
    """The pybids query of the preprocessed BOLD runs the filters select."""
    query: dict = {"suffix": "bold", "desc": bold_desc, "extension": [".nii.gz", ".nii"]}
    if participants:
        query["subject"] = participants
    if sessions:
        query["session"] = _strip(sessions)
    if tasks:
        query["task"] = list(tasks)
    if runs:
        query["run"] = [int(r) if str(r).isdigit() else r for r in runs]
    if den:
        query["den"] = den
    if space in GRAYORDINATE_SPACES:  # fMRIPrep names surface outputs without desc
        query.pop("desc")
        query["extension"] = GRAYORDINATE_EXTENSIONS
    return query


def _find_bolds(der, query: dict, space: str, fmriprep_dir: Path, bold_desc: str) -> list:
    if space in NATIVE_SPACES:
        bolds = [f for f in der.get(**query) if "space" not in f.get_entities()]
    else:
        bolds = der.get(space=space, **query)
    if not bolds:
        filters = {k: v for k, v in query.items() if k not in ("suffix", "extension")}
        present = {k: sorted(map(str, der.get(return_type="id", target=k, suffix="bold"))) for k in ("task", "space")}
        raise InputError(
            f"{fmriprep_dir}: no desc-{bold_desc} BOLD matches the filters {filters} and space '{space}' (its BOLD "
            f"runs have tasks {', '.join(present['task']) or 'none'}; spaces {', '.join(present['space']) or 'none'}). "
            "Check --participant-label/--session-label/--task/--run/--space."
            + (" fMRIPrep writes ICA-AROMA outputs in MNI152NLin6Asym: add --space MNI152NLin6Asym."
               if bold_desc == "smoothAROMAnonaggr" else ""), code=18
        )
    return bolds


@dataclass(frozen=True)
class _EventsFile:
    """An events file as the BIDS inheritance principle sees it."""

    entities: dict  # its run entities (without echo, part and the space entities), as strings
    raw: bool  # in the raw dataset (wins over the derivatives at the same level)
    path: Path


def _folder(path: Path, root: Path) -> tuple[str, ...]:
    """The folder of ``path`` relative to its dataset's ``root``, as parts (``("sub-01", "func")``)."""
    try:
        return path.parent.relative_to(root).parts
    except ValueError:  # the same folder spelled otherwise (a symbolic link)
        return path.parent.resolve().relative_to(root.resolve()).parts


def _events_entities(ents: dict) -> dict:
    """The entities an events file is matched on, as strings; ``run`` as its index (BIDS: ``run-01`` and ``run-1``
    are run 1, as pybids reads them)."""
    key = dict(_key(ents, drop=_NOT_EVENTS))
    if key.get("run", "").isdigit():
        key["run"] = str(int(key["run"]))
    return key


def _events_of(bold: Path, ents: dict, folder: tuple[str, ...], events: dict) -> Path | None:
    """The events file of a run by the BIDS inheritance principle: of the files whose entities are a subset of
    the run's, in the run's folder or a parent folder up to the dataset's root, the deepest one; at one level,
    the raw dataset's wins over the derivatives'. Two applicable files at one level of one dataset are refused."""
    run = _events_entities(ents)
    for depth in range(len(folder), -1, -1):  # the run's folder first, then its parents
        level = [e for e in events.get(folder[:depth], ()) if all(run.get(k) == v for k, v in e.entities.items())]
        if any(e.raw for e in level):
            level = [e for e in level if e.raw]
        if len(level) > 1:
            raise InputError(
                f"{bold.name}: two events files apply to this run at the same level, {level[0].path} and "
                f"{level[1].path}; the BIDS inheritance principle allows one per level: remove one, or give "
                "each file the entities (e.g. run-) of the runs it belongs to.", code=2)
        if level:
            return level[0].path
    return None


def _events_search(folder: tuple[str, ...], roots: list[Path]) -> str:
    """Where a run's events file is looked for: its folder and each parent, in each dataset."""
    levels = ["/".join(folder[:depth]) + "/" for depth in range(len(folder), 0, -1)]
    places = f"{', '.join(levels)} and the top folder" if levels else "the top folder"
    return f"*_events.tsv in {places} of {' and of '.join(str(r) for r in roots)}"


@dataclass
class _RunTables:
    """One query per kind of file, then dictionary look-ups per run (fast on large datasets)."""

    masks: dict
    confounds: dict
    events: dict  # folder relative to the dataset's root -> the _EventsFile there (raw and derivatives)
    sidecars: list
    events_roots: list  # the datasets' roots where events files are looked for (raw first)

    @classmethod
    def of(cls, der, raw) -> _RunTables:
        masks: dict = {}
        for m in der.get(suffix="mask", desc="brain", extension=[".nii.gz", ".nii"]):
            e = _entities(m)
            if "task" in e:
                masks.setdefault((_key(e), e.get("space")), Path(m.path))
        confounds: dict = {}
        for c in der.get(suffix=["timeseries", "regressors"], desc="confounds", extension=".tsv"):
            confounds.setdefault(_key(_entities(c), drop=_SPACE_ENTITIES), Path(c.path))
        events: dict = {}
        layouts = [(lay, lay is raw) for lay in (raw, der) if lay is not None]  # raw wins over derivatives
        for lay, is_raw in layouts:
            for e in lay.get(suffix="events", extension=".tsv"):
                path = Path(e.path)
                folder = _folder(path, Path(lay.root))
                events.setdefault(folder, []).append(_EventsFile(_events_entities(_entities(e)), is_raw, path))
        sidecars = []
        if raw is not None:
            for js in raw.get(suffix="bold", extension=".json"):
                ents = {k: str(v) for k, v in js.get_entities().items() if k in RUN_ENTITIES}
                sidecars.append((ents, Path(js.path)))
        return cls(masks, confounds, events, sidecars, [Path(lay.root) for lay, _ in layouts])


def _check_once(seen: dict, key: tuple, ents: dict, bold: Path) -> None:
    """run-01 and run-1 are one run for BIDS (and pybids): a run found twice is refused."""
    same = (tuple((k, v.lstrip("0") or "0" if k in ("run", "echo") else v) for k, v in key), ents.get("space"))
    if same in seen:
        raise InputError(
            f"the same run was found twice: {seen[same]} and {bold}. Remove one of "
            "them (e.g. an uncompressed copy) or move it out of the fMRIPrep folder.", code=2)
    seen[same] = bold


def _run_metadata(bold: Path, ents: dict, sidecars: list, right: Path | None) -> tuple[dict, list[Path]]:
    """The run's metadata (inherited raw sidecars, then fMRIPrep's own, which wins) and the files it came from;
    a GIFTI pair's hemi-R JSON must agree with the hemi-L one."""
    meta, meta_files = _inherited_metadata(dict(_key(ents, drop=_SPACE_ENTITIES)), sidecars)
    own = _own_sidecar(bold)
    if own is not None:
        meta.update(_read_json(own))  # fMRIPrep's sidecar wins (StartTime, SliceTimingCorrected)
        meta_files.append(own)
    own_right = _own_sidecar(right) if right is not None else None
    if own_right is not None:  # a GIFTI pair: the hemi-R JSON must say the same (it is a source too)
        other = _read_json(own_right)
        differ = sorted(k for k in set(other) & set(meta) if other[k] != meta[k])
        if differ:
            raise InputError(f"{own_right}: {differ[0]} is {other[differ[0]]!r} but {meta[differ[0]]!r} for "
                             f"the hemi-L file ({own or 'inherited'}); the two hemispheres of a run must have "
                             "the same metadata.")
        meta = {**other, **meta}
        meta_files.append(own_right)
    return meta, meta_files


#: density of the surface meshes of fsLR grayordinates
_FSLR_MESH = {"91k": "32k", "170k": "59k"}


def _surfaces(der, surface: str) -> dict:
    """fMRIPrep's anat surfaces: (subject, session, space, den, hemi) -> path."""
    out = {}
    for f in der.get(suffix=surface, extension=".surf.gii"):
        e = f.get_entities()
        out[(str(e.get("subject")), e.get("session"), e.get("space"), e.get("den"), e.get("hemi"))] = Path(f.path)
    return out


def _surface_mesh(ents: dict) -> tuple[str | None, str | None]:
    """(space, den) entities of the anat surfaces on a run's mesh (fsnative surfaces have neither)."""
    space = None if ents.get("space") == "fsnative" else ents.get("space")
    return space, _FSLR_MESH.get(str(ents.get("den")), ents.get("den")) if space == "fsLR" else None


def _why_no_surfaces(surfaces: dict, ents: dict, surface: str) -> str:
    """Why a grayordinate run has no vertex coordinates: which surface file was looked for, and the
    participant's surfaces of that kind on other meshes, if any (a mesh that does not match)."""
    space, den = _surface_mesh(ents)
    sub = str(ents["subject"])
    wanted = f"sub-{sub}_hemi-L|R{f'_space-{space}' if space else ''}{f'_den-{den}' if den else ''}_{surface}.surf.gii"
    found = [(h, sp, d) for (s, _, sp, d, h) in surfaces if s == sub]
    hemis = {h for h, sp, d in found if (sp, d) == (space, den)}
    if len(hemis) == 1:
        return f"only the hemi-{hemis.pop()} file of {wanted} was found"
    others = sorted({f"space-{sp or 'fsnative'}{f' den-{d}' if d else ''}" for _, sp, d in found})
    if others:
        return (f"the participant's {surface} surfaces are on another mesh ({', '.join(others)}), not the run's "
                f"({wanted} not found)")
    return f"no {surface} surface found ({wanted} in the fMRIPrep folder)"


def _run_surfaces(surfaces: dict, ents: dict) -> dict:
    """The hemi-L/R surfaces of a run's subject (its session first), in the run's space and mesh density."""
    space, den = _surface_mesh(ents)
    found = {}
    for hemi in ("L", "R"):
        for ses in (ents.get("session"), None):
            path = surfaces.get((str(ents["subject"]), ses, space, den, hemi))
            if path is not None:
                found[hemi] = path
                break
    return found if len(found) == 2 else {}  # one hemisphere only: said by _why_no_surfaces

def _own_sidecar(bold: Path) -> Path | None:
    """fMRIPrep's JSON of a BOLD file (``.nii[.gz]``, ``.dtseries.nii`` -> ``.dtseries.json``, ``.func.gii``)."""
    name = bold.name
    for ext, new in ((".nii.gz", ".json"), (".dtseries.nii", ".dtseries.json"), (".dtseries.nii", ".json"),
                     (".func.gii", ".func.json"), (".func.gii", ".json"), (".nii", ".json")):
        if name.endswith(ext) and _present(bold.with_name(name[: -len(ext)] + new)):
            return bold.with_name(name[: -len(ext)] + new)
    return None


def _pair_hemispheres(bolds) -> dict[Path, Path]:
    """hemi-L func.gii -> its hemi-R file; a run with one hemisphere only is an error naming the file."""
    by_run: dict = {}
    for f in bolds:
        ents = _entities(f)
        if str(ents.get("extension", "")).endswith(".func.gii"):
            by_run.setdefault((_key(ents), ents.get("space")), {})[ents.get("hemi")] = Path(f.path)
    pairs = {}
    for files in by_run.values():
        if set(files) != {"L", "R"}:
            have = next(iter(files.values()))
            raise InputError(f"{have}: missing hemisphere (found hemi-{'/'.join(sorted(map(str, files)))} only); "
                             "a GIFTI run needs its hemi-L and hemi-R func.gii files.")
        pairs[files["L"]] = files["R"]
    return pairs
