"""The BIDS-App argument parser; options also come from --config (JSON or TOML)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bidsapp import __version__
from bidsapp.core.confounds import COMPCOR, MODELS, STRATEGIES, parse_dummy_scans
from bidsapp.settings import MASK_STRATEGIES, OUTPUT_FORMATS, SETTING_NAMES, Settings


class UsageError(ValueError):
    """Invalid command line or configuration (exit code 2, or 17 for the analysis level)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def _none_or(kind):
    def conv(v):
        return None if str(v).lower() in ("none", "null", "") else kind(v)
    return conv


def _n_compcor(v):
    return "all" if v == "all" else int(v)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bidsapp",
        description="After fMRIPrep: per run, a cleaned samples x features array (rows = volumes, "
        "columns = mask voxels or atlas regions) with features/samples tables and provenance.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("bids_dir", type=Path, help="BIDS dataset (raw) or the fMRIPrep folder itself")
    p.add_argument("output_dir", type=Path, help="output folder (BIDS-Derivatives)")
    p.add_argument("analysis_level", help="participant: process runs; group: summary table and masks")
    p.add_argument("--version", action="version", version=f"bidsapp {__version__}")
    g = p.add_argument_group("inputs and filters")
    g.add_argument("--fmriprep-dir", type=Path, help="fMRIPrep outputs (default: <bids_dir>/derivatives/fmriprep)")
    g.add_argument("--participant-label", nargs="+", default=[], help="participants (01 or sub-01)")
    g.add_argument("--session-label", nargs="+", default=[], help="sessions")
    g.add_argument("--task", nargs="+", default=[], help="tasks")
    g.add_argument("--run", nargs="+", default=[], help="runs")
    g.add_argument("--space", default="MNI152NLin2009cAsym", help="output space of fMRIPrep (T1w, func for native)")
    g.add_argument("--config", type=Path, help="settings file (.json or .toml) with any option below")
    g = p.add_argument_group("mask")
    g.add_argument("--mask-strategy", choices=MASK_STRATEGIES, default="fmriprep")
    g.add_argument("--resample-mask", action="store_true", help="resample a mask/atlas on another grid (nearest)")
    g.add_argument("--smoothing-fwhm", type=_none_or(float), default=None, metavar="MM")
    g.add_argument("--atlas", type=Path, help="labels image (integer regions, 0 = background)")
    g.add_argument("--atlas-labels", type=Path, help="label table (dseg.tsv: index, name)")
    g.add_argument("--atlas-name", help="atlas- entity of outputs (default: from the file name)")
    g = p.add_argument_group("denoising (fMRIPrep confounds, nilearn's strategies)")
    g.add_argument("--denoise", choices=STRATEGIES, default="simple")
    g.add_argument("--confounds", nargs="+", default=[], metavar="COL", help="explicit confound columns")
    g.add_argument("--motion", choices=MODELS)
    g.add_argument("--wm-csf", choices=MODELS)
    g.add_argument("--global-signal", choices=MODELS)
    g.add_argument("--scrub", type=int)
    g.add_argument("--fd-threshold", type=float)
    g.add_argument("--std-dvars-threshold", type=float)
    g.add_argument("--compcor", choices=COMPCOR)
    g.add_argument("--n-compcor", type=_n_compcor)
    g.add_argument("--no-demean", dest="demean", action="store_false", default=True)
    g.add_argument("--dummy-scans", type=parse_dummy_scans, default="auto", metavar="auto|N",
                   help="non-steady-state volumes censored with every strategy (none included): auto = "
                   "fMRIPrep's non_steady_state_outlier columns (none without a confounds file), N = the first N")
    g = p.add_argument_group("signal cleaning (nilearn.signal.clean order)")
    g.add_argument("--detrend", action=argparse.BooleanOptionalAction, default=True)
    g.add_argument("--standardize", choices=["zscore_sample", "psc", "none"], default="zscore_sample")
    g.add_argument("--no-standardize-confounds", dest="standardize_confounds", action="store_false", default=True)
    g.add_argument("--low-pass", type=_none_or(float), metavar="HZ")
    g.add_argument("--high-pass", type=_none_or(float), metavar="HZ")
    g.add_argument("--filter", choices=["butterworth", "cosine", "none"], default="butterworth")
    g.add_argument("--t-r", type=float, help="override RepetitionTime (s)")
    g = p.add_argument_group("trials")
    g.add_argument("--hrf-lag", type=float, default=0.0, metavar="SECONDS")
    g.add_argument("--trial-window", type=float, nargs=2, default=[-2.0, 16.0], metavar=("START", "END"))
    g.add_argument("--trial-edge", choices=["drop", "nan"], default="nan")
    g.add_argument("--trial-estimates", choices=["lss", "none"], default="none")
    g = p.add_argument_group("outputs and execution")
    g.add_argument("--output-format", nargs="+", choices=OUTPUT_FORMATS, default=["npy"])
    g.add_argument("--work-dir", type=Path, help="nipype working directory (cache; resume)")
    g.add_argument("--nprocs", type=int, help="parallel processes (default: available cores)")
    g.add_argument("--plugin", default="MultiProc",
                   choices=["MultiProc", "Linear", "SLURM", "SLURMGraph", "SGE", "SGEGraph", "PBS", "LSF", "Condor"])
    g.add_argument("--plugin-args", help="JSON dict passed to the nipype plugin")
    g.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and nipype logs")
    return p


def _read_config(path: Path) -> dict:
    if not path.is_file():
        raise UsageError(f"{path}: config file not found.")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10
                raise UsageError(f"{path}: TOML settings need Python >= 3.11; use a .json file.") from None
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # json / toml decode errors
        raise UsageError(f"{path}: cannot parse config ({exc}).") from exc
    data = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - SETTING_NAMES)
    if unknown:
        raise UsageError(f"{path}: unknown setting(s) {unknown}; see bidsapp --help.")
    return data


def parse_args(argv: list[str] | None = None) -> Settings:
    """Parse the command line (+ config file) into validated :class:`Settings`."""
    parser = build_parser()
    raw = list(argv) if argv is not None else sys.argv[1:]
    values = vars(parser.parse_args(raw))
    if values.get("config"):
        # the config file fills every option not given on the command line
        explicit = {a.dest for a in parser._actions if any(opt in raw for opt in a.option_strings)}
        values.update({k: v for k, v in _read_config(values["config"]).items() if k not in explicit})
    if values["analysis_level"] not in ("participant", "group"):
        raise UsageError(f"Unknown analysis level '{values['analysis_level']}'; use participant or group.", code=17)
    for key in ("standardize", "filter"):
        if values.get(key) == "none":
            values[key] = None
    if values.get("trial_estimates") == "none":
        values["trial_estimates"] = None
    bids_dir = Path(values["bids_dir"]).resolve()
    out = Path(values["output_dir"]).resolve()
    if out == bids_dir or (bids_dir in out.parents and not str(out.relative_to(bids_dir)).startswith("derivatives")):
        raise UsageError(
            f"{out}: output_dir must not be the BIDS folder or inside its raw data; use e.g. "
            f"{bids_dir / 'derivatives' / 'bidsapp'} or a folder outside it."
        )
    fmriprep = values.get("fmriprep_dir")
    if fmriprep is None:
        cand = bids_dir / "derivatives" / "fmriprep"
        fmriprep = cand if cand.is_dir() or not _looks_like_derivatives(bids_dir) else bids_dir
    values["fmriprep_dir"] = Path(fmriprep).resolve()
    values["bids_dir"], values["output_dir"] = bids_dir, out
    if values.get("atlas") and not values.get("atlas_name"):
        stem = Path(values["atlas"]).name.split(".")[0]
        ent = [p[6:] for p in stem.split("_") if p.startswith("atlas-")]
        values["atlas_name"] = ent[0] if ent else "".join(ch for ch in stem if ch.isalnum())
    if values.get("nprocs") is None:
        values["nprocs"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if values.get("plugin_args"):
        try:
            json.loads(values["plugin_args"])
        except json.JSONDecodeError as exc:
            raise UsageError(f"--plugin-args must be a JSON object ({exc}).") from exc
    for k in ("participant_label", "session_label", "task", "run", "confounds", "output_format", "trial_window"):
        values[k] = tuple(values.get(k) or ())
    for k in ("work_dir", "atlas", "atlas_labels", "config"):
        if values.get(k) is not None:
            values[k] = Path(values[k]).resolve()
    for k in ("atlas", "atlas_labels"):
        if values.get(k) is not None and not values[k].is_file():
            raise UsageError(f"{values[k]}: --{k.replace('_', '-')} file not found.", code=66)
    return Settings(**{k: v for k, v in values.items() if k in SETTING_NAMES})


def _looks_like_derivatives(path: Path) -> bool:
    desc = path / "dataset_description.json"
    if not desc.exists():
        return False
    try:
        return json.loads(desc.read_text()).get("DatasetType") == "derivative"
    except json.JSONDecodeError:
        return False
