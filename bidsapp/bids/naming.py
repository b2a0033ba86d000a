"""Output names from BIDS entities: the one path pattern, desc labels and a run's naming."""


from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: entities of a source BOLD that identify the run and are carried to every output name (pybids names)
SOURCE_ENTITIES = ("subject", "session", "task", "acquisition", "ceagent", "reconstruction", "direction",
                   "run", "echo", "part", "space", "cohort", "res", "den")


#: BIDS entities of bidsapp's output names, in BIDS order: (pybids name, file-name key)
ENTITY_KEYS = (
    ("subject", "sub"), ("session", "ses"), ("task", "task"), ("acquisition", "acq"),
    ("ceagent", "ce"), ("reconstruction", "rec"), ("direction", "dir"), ("run", "run"),
    ("echo", "echo"), ("part", "part"), ("hemi", "hemi"), ("space", "space"), ("cohort", "cohort"), ("atlas", "atlas"),
    ("res", "res"), ("den", "den"), ("desc", "desc"),
)


#: pybids name -> file-name key (``subject`` -> ``sub``), and back
SHORT_KEYS = dict(ENTITY_KEYS)
LONG_KEYS = {short: name for name, short in ENTITY_KEYS}


def entities_of(stem: str) -> dict[str, str]:
    """The entities (pybids names) of an output stem: ``sub-01_task-x_run-1`` -> subject, task, run."""
    out = {}
    for part in stem.split("_"):
        key, _, value = part.partition("-")
        if key in LONG_KEYS and value:
            out[LONG_KEYS[key]] = value
    return out


def stem_of_entities(entities) -> str:
    """``key-value`` parts of entities (a dict or pairs of pybids names and values), in the given order:
    ``{"subject": "01", "task": "x"}`` -> ``sub-01_task-x``."""
    items = entities.items() if isinstance(entities, dict) else entities
    return "_".join(f"{SHORT_KEYS[k]}-{v}" for k, v in items)


#: the project's one path pattern for run outputs (pybids ``build_path`` syntax), entities in BIDS order
PATH_PATTERN = (
    "sub-{subject}[/ses-{session}]/func/sub-{subject}[_ses-{session}][_task-{task}][_acq-{acquisition}]"
    "[_ce-{ceagent}][_rec-{reconstruction}][_dir-{direction}][_run-{run}][_echo-{echo}][_part-{part}]"
    "[_hemi-{hemi}][_space-{space}][_cohort-{cohort}][_atlas-{atlas}][_res-{res}][_den-{den}][_desc-{desc}]"
    "[_meas-{meas}]_{suffix}{extension}"
)


NATIVE_SPACES = ("func", "native", "boldref")


_LABEL = re.compile(r"[A-Za-z0-9]+", re.ASCII)


#: file-name keys of the entities that name a run (the rest of an output stem names its variant)
RUN_KEYS = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo", "part")


def variant_of(stem: str) -> str:
    """The variant an output stem belongs to: its entities that do not name the run
    (``sub-01_task-x_run-1_space-MNI_desc-simple`` -> ``space-MNI_desc-simple``)."""
    return "_".join(p for p in stem.split("_") if "-" in p and p.split("-", 1)[0] not in RUN_KEYS)


def desc_label(strategy: str) -> str:
    """BIDS ``desc`` label of a strategy name (ASCII letters and digits: ``ica_aroma`` -> ``icaaroma``)."""
    return "".join(ch for ch in strategy if ch.isascii() and ch.isalnum())


def mask_desc(mask_strategy: str) -> str:
    """``desc`` of the mask file: ``brain`` for fMRIPrep's mask, else the strategy (``epi``, ``gmtemplate``...).

    Outputs made with different mask strategies never share (and so never overwrite) one mask file.
    """
    return "brain" if mask_strategy == "fmriprep" else desc_label(mask_strategy)


def is_label(value: str) -> bool:
    """Is ``value`` a BIDS label (``[A-Za-z0-9]+``: ASCII letters and digits)?"""
    return _LABEL.fullmatch(str(value)) is not None


def check_label(value: str, what: str) -> str:
    """Return ``value`` if it is a BIDS label (``[A-Za-z0-9]+``), else raise ``ValueError``."""
    if not is_label(value):
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
        ents.pop("meas", None)  # meas: a connectivity matrix (_relmat.tsv)
        src = {k: str(v) for k, v in self.source.items()}
        if src.get("space") in NATIVE_SPACES:
            src.pop("space")
        return ents == src
