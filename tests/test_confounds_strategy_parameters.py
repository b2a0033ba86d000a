"""Which parameters each denoising strategy applies: those nilearn's ``load_confounds_strategy`` applies."""

import warnings

import numpy as np
import pytest

from bidsapp.core import confounds as cf
from tests.test_confounds import _fmriprep_run

#: nilearn's 30-volume test files: the default thresholds censor every volume (and any threshold does in
#: the fMRIPrep >= 21 file, where nilearn returns no volume: only the 1.x file is compared)
THRESHOLDS = {"fd_threshold": 0.3, "std_dvars_threshold": 5, "scrub": 0}


@pytest.mark.parametrize("key", ["v1x"])
@pytest.mark.parametrize("wm_csf", ["basic", "derivatives", "power2", "full"])
def test_scrubbing_applies_wm_csf_as_nilearn(tmp_path, key, wm_csf):
    """``--denoise scrubbing --wm-csf basic`` was ignored with a warning; nilearn applies it (30 columns)."""
    from nilearn.interfaces.fmriprep import load_confounds_strategy

    tsv, bold, _ = _fmriprep_run(tmp_path, key)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # nilearn warns about parameters it does not use
        ref, ref_mask = load_confounds_strategy(str(bold), "scrubbing", wm_csf=wm_csf, **THRESHOLDS)
    ours = cf.select_confounds(cf.read_confounds(tsv), "scrubbing", wm_csf=wm_csf, **THRESHOLDS)
    assert ours.names == list(ref.columns)
    np.testing.assert_allclose(ours.values, ref.to_numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(ours.sample_mask, ref_mask)
    n_wm_csf = {"basic": 2, "derivatives": 4, "power2": 4, "full": 8}[wm_csf]
    assert sum(n.startswith(("white_matter", "csf", "WhiteMatter", "CSF")) for n in ours.names) == n_wm_csf


def test_tunable_parameters_are_nilearns():
    """Every strategy takes the parameters of nilearn's preset (its keys), nothing else."""
    from nilearn.interfaces.fmriprep.load_confounds_strategy import preset_strategies

    for strategy, preset in preset_strategies.items():
        assert cf.TUNABLE[strategy] == set(preset) - {"strategy", "ica_aroma"}, strategy


def test_scrubbing_wm_csf_is_not_reported_as_ignored():
    assert cf.inapplicable_parameters("scrubbing", {"wm_csf": "basic", "compcor": "temporal"}) == ["compcor"]
