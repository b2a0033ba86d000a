"""BIDS-Derivatives naming, provenance sidecars and dataset_description.json."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from bidsapp import __version__
from bidsapp.core.io import read_tsv, sha256sum, to_float, write_text

ENTITY_KEYS = (
    ("subject", "sub"), ("session", "ses"), ("task", "task"), ("acquisition", "acq"),
    ("ceagent", "ce"), ("reconstruction", "rec"), ("direction", "dir"), ("run", "run"),
    ("echo", "echo"), ("space", "space"), ("atlas", "atlas"), ("desc", "desc"),
)
#: suffixes written by bidsapp that the BIDS validator does not know
BIDSIGNORE = ["*_timeseries.npy", "*_features.tsv", "*_samples.tsv", "*_trials.npy", "*_trials.tsv",
              "*_betas.npy", "*_betas.tsv", "logs/", "*.html", "group_runs.tsv",
              "*_desc-intersection_mask.nii.gz",
              "*_features.json", "*_samples.json", "*_trials.json", "*_betas.json", "group_runs.json"]


def bids_name(entities: dict, suffix: str, extension: str) -> str:
    """File name from BIDS entities (BIDS order), a suffix and an extension."""
    parts = [f"{short}-{entities[key]}" for key, short in ENTITY_KEYS if entities.get(key)]
    return "_".join(parts + [suffix]) + extension


def run_folder(output_dir: Path, entities: dict) -> Path:
    """``sub-<label>/[ses-<label>/]func`` under ``output_dir``."""
    folder = Path(output_dir) / f"sub-{entities['subject']}"
    if entities.get("session"):
        folder = folder / f"ses-{entities['session']}"
    return folder / "func"


def bids_uri(path: Path, dataset_root: Path, name: str) -> str:
    """``bids:<name>:<relative path>`` URI of a file of a named dataset."""
    try:
        rel = Path(path).resolve().relative_to(Path(dataset_root).resolve())
    except ValueError:
        return Path(path).resolve().as_uri()
    return f"bids:{name}:{rel.as_posix()}"


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


def sources(files: dict[str, Path | None], roots: dict[str, Path]) -> list[dict]:
    """``Sources`` entries: BIDS URI and sha256 of each input file."""
    out = []
    for role, path in files.items():
        if path is None:
            continue
        uri = str(Path(path).resolve())
        for name, root in roots.items():
            try:
                Path(path).resolve().relative_to(Path(root).resolve())
            except ValueError:
                continue
            uri = bids_uri(path, root, name)
            break
        out.append({"Role": role, "URI": uri, "SHA256": sha256sum(path)})
    return out


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
    source = {"fmriprep": {"URL": Path(fmriprep_dir).resolve().as_uri(), "DatasetType": "derivative"}}
    if bids_dir is not None and Path(bids_dir).resolve() != Path(fmriprep_dir).resolve():
        source["raw"] = {"URL": Path(bids_dir).resolve().as_uri()}
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


def outputs_current(sidecar: Path, configuration_hash: str, source_hashes: dict[str, str] | None = None) -> bool:
    """True when a run's outputs exist and were made with the same settings."""
    if not sidecar.exists():
        return False
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if meta.get("ConfigurationHash") != configuration_hash:
        return False
    for f in meta.get("OutputFiles", []):
        if not (sidecar.parent / f).exists():
            return False
    return True


def command_line() -> str:
    return " ".join(sys.argv)


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
