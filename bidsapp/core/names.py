"""Names of strategies and models (no imports: the command-line parser reads them for --help)."""

MODELS = ("basic", "derivatives", "power2", "full")
COMPCOR = ("anat_combined", "anat_separated", "temporal", "temporal_anat_combined", "temporal_anat_separated")
STRATEGIES = ("none", "simple", "scrubbing", "compcor", "ica_aroma")
MASK_STRATEGIES = ("fmriprep", "background", "epi", "whole-brain-template", "gm-template", "wm-template")
#: ``--trial-estimates`` models (``none``: no estimates)
TRIAL_MODELS = ("lss", "lsa", "optimized", "none")
#: ``--hrf`` choices (bidsapp.core.hrf)
HRF_MODELS = ("spm", "glover", "spm+derivative", "spm+derivative+dispersion", "fir", "library")


def parse_dummy_scans(value) -> str | int:
    """``"auto"`` (fMRIPrep's non_steady_state_outlier columns) or a number of volumes >= 0."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"dummy_scans must be 'auto' or a number of volumes >= 0, got {value!r}.") from None
    if n < 0 or str(value).strip() not in (str(n), f"{n}.0"):
        raise ValueError(f"dummy_scans must be 'auto' or a number of volumes >= 0, got {value!r}.")
    return n
