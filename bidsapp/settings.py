"""Every option of a bidsapp invocation, in one frozen dataclass."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

SURFACES = ("midthickness", "pial", "white", "inflated", "none")
MASK_STRATEGIES = ("fmriprep", "background", "epi", "whole-brain-template", "gm-template", "wm-template")
OUTPUT_FORMATS = ("npy", "tsv.gz", "nii.gz", "dtseries.nii", "func.gii")

#: fields that do not change the numbers written (excluded from ConfigurationHash)
NON_RESULT_FIELDS = {
    "bids_dir", "output_dir", "analysis_level", "fmriprep_dir", "participant_label", "session_label",
    "task", "run", "den", "work_dir", "nprocs", "mem_gb", "plugin", "plugin_args", "verbose", "config",
}


#: options that tune a denoising strategy (ignored, with a warning, by strategies that do not use them)
STRATEGY_PARAMETERS = {"motion", "wm_csf", "global_signal", "scrub", "fd_threshold", "std_dvars_threshold",
                       "compcor", "n_compcor"}


@dataclass(frozen=True)
class Settings:
    """Options of one invocation (CLI, config file and defaults merged)."""

    bids_dir: Path
    output_dir: Path
    analysis_level: str = "participant"
    fmriprep_dir: Path | None = None
    participant_label: tuple[str, ...] = ()
    session_label: tuple[str, ...] = ()
    task: tuple[str, ...] = ()
    run: tuple[str, ...] = ()
    space: str = "MNI152NLin2009cAsym"
    den: str | None = None
    surface: str = "midthickness"
    mask_strategy: str = "fmriprep"
    resample_mask: bool = False
    denoise: str = "simple"
    confounds: tuple[str, ...] = ()
    motion: str | None = None
    wm_csf: str | None = None
    global_signal: str | None = None
    scrub: int | None = None
    fd_threshold: float | None = None
    std_dvars_threshold: float | None = None
    compcor: str | None = None
    n_compcor: str | int | None = None
    demean: bool = True
    dummy_scans: str | int = "auto"
    detrend: bool = True
    standardize: str | None = "zscore_sample"
    standardize_confounds: bool = True
    low_pass: float | None = None
    high_pass: float | None = None
    filter: str | None = "butterworth"
    smoothing_fwhm: float | None = None
    t_r: float | None = None
    atlas: Path | None = None
    atlas_labels: Path | None = None
    atlas_name: str | None = None
    atlas_template: str | None = None
    spheres: Path | None = None
    sphere_radius: float | None = None
    allow_overlap: bool = False
    output_format: tuple[str, ...] = ("npy",)
    hrf_lag: float = 0.0
    trial_window: tuple[float, float] = (-2.0, 16.0)
    trial_edge: str = "nan"
    trial_estimates: str | None = None
    work_dir: Path | None = None
    nprocs: int | None = None
    mem_gb: float | None = None
    plugin: str = "MultiProc"
    plugin_args: str | None = None
    verbose: bool = False
    config: Path | None = None

    def to_dict(self) -> dict:
        """JSON-friendly dict of every setting."""
        out = {}
        for k, v in asdict(self).items():
            if isinstance(v, Path):
                v = str(v)
            elif isinstance(v, tuple):
                v = [str(x) if isinstance(x, Path) else x for x in v]
            out[k] = v
        return out

    def result_settings(self) -> dict:
        """The settings that change the arrays written (inputs to the hash); strategy parameters that
        do not apply to the denoising strategy are left out."""
        from bidsapp.core.confounds import inapplicable_parameters

        unused = set(inapplicable_parameters(self.denoise, dict.fromkeys(STRATEGY_PARAMETERS, True), self.confounds))
        return {k: v for k, v in self.to_dict().items() if k not in NON_RESULT_FIELDS | unused}

    def configuration_hash(self) -> str:
        """SHA-256 (first 16 hex) of the result-affecting settings."""
        blob = json.dumps(self.result_settings(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


SETTING_NAMES = {f.name for f in fields(Settings)}
