"""BIDS-Derivatives naming, provenance sidecars and dataset_description.json."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from bidsapp import __version__
from bidsapp.core.io import read_tsv, to_float, write_text

#: entities of a source BOLD that identify the run and are carried to every output name (pybids names)
SOURCE_ENTITIES = ("subject", "session", "task", "acquisition", "ceagent", "reconstruction", "direction",
                   "run", "echo", "part", "space", "cohort", "res", "den")
#: the project's one path pattern for run outputs (pybids ``build_path`` syntax), entities in BIDS order
PATH_PATTERN = (
    "sub-{subject}[/ses-{session}]/func/sub-{subject}[_ses-{session}][_task-{task}][_acq-{acquisition}]"
    "[_ce-{ceagent}][_rec-{reconstruction}][_dir-{direction}][_run-{run}][_echo-{echo}][_part-{part}]"
    "[_hemi-{hemi}][_space-{space}][_cohort-{cohort}][_atlas-{atlas}][_res-{res}][_den-{den}][_desc-{desc}]"
    "_{suffix}{extension}"
)
NATIVE_SPACES = ("func", "native", "boldref")
_LABEL = re.compile(r"[A-Za-z0-9]+", re.ASCII)
#: suffixes written by bidsapp that the BIDS validator does not know
BIDSIGNORE = ["*_timeseries.npy", "*_features.tsv", "*_samples.tsv", "*_trials.npy", "*_trials.tsv",
              "*_betas.npy", "*_betas.tsv", "logs/", "*.html", "group_runs.tsv",
              "*_desc-intersection_mask.nii.gz", "*_desc-intersection_mask.dscalar.nii",
              "*_desc-intersection_mask.json", "*_desc-brain_mask.dscalar.nii",
              "*_features.json", "*_samples.json", "*_trials.json", "*_betas.json", "group_runs.json"]


def desc_label(strategy: str) -> str:
    """BIDS ``desc`` label of a strategy name (ASCII letters and digits: ``ica_aroma`` -> ``icaaroma``)."""
    return "".join(ch for ch in strategy if ch.isascii() and ch.isalnum())


def mask_desc(mask_strategy: str) -> str:
    """``desc`` of the mask file: ``brain`` for fMRIPrep's mask, else the strategy (``epi``, ``gmtemplate``...).

    Outputs made with different mask strategies never share (and so never overwrite) one mask file.
    """
    return "brain" if mask_strategy == "fmriprep" else desc_label(mask_strategy)


def check_label(value: str, what: str) -> str:
    """Return ``value`` if it is a BIDS label (``[A-Za-z0-9]+``), else raise ``ValueError``."""
    if not _LABEL.fullmatch(str(value)):
        raise ValueError(f"{what} '{value}' is not a BIDS label: use letters and digits only (e.g. "
                         f"'{desc_label(str(value)) or 'schaefer100'}').")
    return str(value)


def output_relpath(entities: dict, suffix: str, extension: str) -> str:
    """Relative path of an output file, built with pybids' ``build_path`` and :data:`PATH_PATTERN`.

    ``entities`` uses pybids names (subject, session, ..., space, atlas, desc); ``None``
    values and native spaces are left out. Every value must be a BIDS label.
    """
    from bids.layout.writing import build_path

    ents = {k: str(v) for k, v in entities.items() if v is not None and v != ""}
    if ents.get("space") in NATIVE_SPACES:
        ents.pop("space")
    for key, value in ents.items():
        check_label(value, f"entity {key}")
    path = build_path(dict(ents, suffix=suffix, extension=extension), [PATH_PATTERN], strict=False)
    if path is None:
        raise ValueError(f"cannot build a BIDS name from {ents} ({suffix}{extension}).")
    return path


def output_path(output_dir: Path, entities: dict, suffix: str, extension: str) -> Path:
    """Absolute path of an output file; refuses any path that resolves outside ``output_dir``."""
    root = Path(output_dir).resolve()
    path = (root / output_relpath(entities, suffix, extension)).resolve()
    if root not in path.parents:
        raise ValueError(f"{path}: output path escapes the output folder {root}.")
    return path


@dataclass(frozen=True)
class RunNaming:
    """Names of one run's outputs: the source's entities plus ``atlas`` and ``desc``."""

    entities: dict
    desc: str
    atlas: str | None = None

    @property
    def source(self) -> dict:
        """The source entities (run identity), in BIDS order."""
        return {k: self.entities[k] for k in SOURCE_ENTITIES if self.entities.get(k) not in (None, "")}

    def path(self, output_dir: Path, suffix: str, extension: str, **override) -> Path:
        ents = dict(self.source, atlas=self.atlas, desc=self.desc)
        ents.update(override)
        return output_path(output_dir, ents, suffix, extension)

    def sidecar(self, output_dir: Path) -> Path:
        return self.path(output_dir, "timeseries", ".json")

    @property
    def identity(self) -> str:
        """File-name-safe run identity (source entities), the name of the run's lock."""
        return Path(output_relpath(self.source, "x", ".x")).name[: -len("_x.x")]

    def owns(self, base: str) -> bool:
        """Whether a file name start (``sub-01_..._desc-x_timeseries``) is an output of this run."""
        parts = base.split("_")
        short = {"sub": "subject", "ses": "session", "acq": "acquisition", "ce": "ceagent",
                 "rec": "reconstruction", "dir": "direction"}
        ents = {}
        for part in parts[:-1]:
            key, _, value = part.partition("-")
            ents[short.get(key, key)] = value
        ents.pop("atlas", None), ents.pop("desc", None), ents.pop("hemi", None)  # hemi: per-hemisphere func.gii
        src = {k: str(v) for k, v in self.source.items()}
        if src.get("space") in NATIVE_SPACES:
            src.pop("space")
        return ents == src


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
    from bidsapp.checksums import ChecksumCache

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


@contextlib.contextmanager
def _locked(path: Path):
    lock_path = path.parent / "logs" / f".{path.name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _source_datasets(fmriprep_dir: Path, bids_dir: Path | None) -> dict:
    source = {"fmriprep": {"URL": Path(fmriprep_dir).resolve().as_uri(), "DatasetType": "derivative"}}
    if bids_dir is not None and Path(bids_dir).resolve() != Path(fmriprep_dir).resolve():
        source["raw"] = {"URL": Path(bids_dir).resolve().as_uri()}
    return source


def check_output_owner(output_dir: Path) -> None:
    """Refuse an output folder that holds another dataset's ``dataset_description.json``.

    bidsapp writes its own ``dataset_description.json`` (and ``.bidsignore``, ``logs/``, ``sub-*``) into the
    output folder; a folder already described as another dataset (a raw BIDS dataset, another pipeline's
    derivatives) is not bidsapp's to rewrite, and its ``*_timeseries.json`` files are not bidsapp's sidecars.

    Raises
    ------
    ValueError
        Naming the file, who generated it and the fix.
    """
    path = Path(output_dir) / "dataset_description.json"
    if not path.exists():
        return
    fix = ("bidsapp writes its own dataset_description.json there; give an empty or bidsapp output folder, "
           "e.g. <bids_dir>/derivatives/bidsapp")
    try:
        desc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read this output folder's dataset description ({exc}); {fix}.") from None
    generated = desc.get("GeneratedBy") if isinstance(desc, dict) else None
    first = generated[0] if isinstance(generated, list) and generated and isinstance(generated[0], dict) else {}
    if first.get("Name") != "bidsapp":
        owner = (f"generated by {first['Name']}" if first.get("Name")
                 else f"the {desc.get('DatasetType', 'raw')} dataset {desc.get('Name')!r}"
                 if isinstance(desc, dict) else "not bidsapp's")
        raise ValueError(f"{path}: the output folder is another dataset ({owner}), not bidsapp's outputs; {fix}.")


def check_dataset_links(output_dir: Path, *, fmriprep_dir: Path, bids_dir: Path | None) -> None:
    """Refuse to mix source datasets in one output folder.

    Every sidecar's ``bids:fmriprep:`` / ``bids:raw:`` URI is resolved through the folder's one
    ``DatasetLinks``; outputs of another dataset would make the earlier runs' URIs point at files
    they were not made from.

    Raises
    ------
    ValueError
        Naming both datasets and the fix.
    """
    path = Path(output_dir) / "dataset_description.json"
    if not path.exists():
        return
    try:
        links = json.loads(path.read_text()).get("DatasetLinks") or {}
    except (OSError, ValueError):
        return
    for name, info in _source_datasets(fmriprep_dir, bids_dir).items():
        if links.get(name) not in (None, info["URL"]):
            raise ValueError(
                f"{path}: this output folder holds outputs of the {name} dataset {links[name]}, not "
                f"{info['URL']}; use a separate output folder per dataset (or, if the dataset was moved, "
                "update DatasetLinks in that file).")


def write_dataset_description(output_dir: Path, *, fmriprep_dir: Path, bids_dir: Path | None) -> Path:
    """Create or update ``dataset_description.json`` (safe under concurrent runs).

    ``GeneratedBy`` lists bidsapp first, then fMRIPrep's own entries.
    """
    output_dir = Path(output_dir)
    path = output_dir / "dataset_description.json"
    upstream: list = []
    fdesc = Path(fmriprep_dir) / "dataset_description.json"
    if fdesc.exists():
        try:
            upstream = json.loads(fdesc.read_text()).get("GeneratedBy", [])
        except json.JSONDecodeError:
            upstream = []
    source = _source_datasets(fmriprep_dir, bids_dir)
    desc = {
        "Name": "bidsapp feature arrays",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [generated_by()] + [g for g in upstream if g.get("Name") != "bidsapp"],
        "SourceDatasets": [dict(v, Name=k) for k, v in source.items()],
        "DatasetLinks": {k: v["URL"] for k, v in source.items()},
    }
    with _locked(path):
        write_text(path, json.dumps(desc, indent=2) + "\n")
        ignore = output_dir / ".bidsignore"
        existing = ignore.read_text().splitlines() if ignore.exists() else []
        lines = existing + [x for x in BIDSIGNORE if x not in existing]
        write_text(ignore, "\n".join(lines) + "\n")
    return path


@dataclass
class RunOutputs:
    """A processed run as read back from its sidecar and samples table (group level, report)."""

    stem: str
    meta: dict
    n_volumes: int
    framewise_displacement: np.ndarray
    kept: np.ndarray


def read_run_outputs(sidecar: Path) -> RunOutputs:
    """Read ``<stem>_timeseries.json`` and ``<stem>_samples.tsv``."""
    meta = json.loads(Path(sidecar).read_text())
    stem = Path(sidecar).name[: -len("_timeseries.json")]
    samples = Path(sidecar).with_name(stem + "_samples.tsv")
    header, rows = read_tsv(samples)
    fd = to_float([r[header.index("framewise_displacement")] for r in rows], path=samples,
                  column="framewise_displacement")
    kept = np.array([r[header.index("kept")] == "True" for r in rows])
    return RunOutputs(stem=stem, meta=meta, n_volumes=len(rows), framewise_displacement=fd, kept=kept)
