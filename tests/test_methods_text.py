"""The generated methods text follows the settings recorded in the run sidecars."""

from __future__ import annotations

import copy
import re

import pytest

from bidsapp.reports.methods import REFERENCES, methods

#: a run sidecar as the participant level writes it (the fields the methods text reads)
SIDECAR = {
    "ColumnSpace": "voxels", "Shape": [98, 1640], "MaskSource": "fMRIPrep brain mask x_desc-brain_mask.nii.gz",
    "MaskVoxelCount": 1640,
    "ConfoundColumns": ["cosine00", "csf", "white_matter"] + [f"m{i}" for i in range(24)],
    "DenoiseParameters": {"components": ["high_pass", "motion", "wm_csf"], "motion": "full", "wm_csf": "basic",
                          "demean": True, "dummy_scans": "auto"},
    "NonSteadyState": {"DummyScans": "auto", "Volumes": [0, 1]},
    "DegreesOfFreedom": 67,
    "Trials": None,
    "Parameters": {"mask_strategy": "fmriprep", "atlas": None, "atlas_name": None, "spheres": None,
                   "sphere_radius": None, "denoise": "simple", "confounds": [], "dummy_scans": "auto",
                   "detrend": True, "standardize": "zscore_sample", "low_pass": None, "high_pass": None,
                   "filter": "butterworth", "smoothing_fwhm": None, "trial_estimates": None},
    "ConfigurationHash": "4c1b6dc428114faf",
    "SoftwareVersions": {"bidsapp": "0.1.0", "python": "3.11.7", "numpy": "2.4.6", "nipype": "1.11.0"},
    "BIDSAppRun": "sub-01_task-faces_run-1_space-MNI152NLin2009cAsym_desc-simple",
}


def _run(**changes) -> dict:
    meta = copy.deepcopy(SIDECAR)
    for key, value in changes.items():
        if key in meta["Parameters"]:
            meta["Parameters"][key] = value
        elif key in meta["DenoiseParameters"]:
            meta["DenoiseParameters"][key] = value
        else:
            meta[key] = value
    return meta


def _scrubbing(fd: float, dvars: float = 1.5) -> dict:
    meta = _run(denoise="scrubbing", BIDSAppRun=SIDECAR["BIDSAppRun"].replace("simple", "scrubbing"))
    meta["DenoiseParameters"].update(components=["high_pass", "motion", "wm_csf", "scrub"], wm_csf="full",
                                     scrub=5, fd_threshold=fd, std_dvars_threshold=dvars)
    return meta


def test_default_text_names_versions_mask_strategy_and_references():
    md, bib = methods([_run()], fmriprep_version="23.2.1")
    assert "*bidsapp* 0.1.0" in md and "*Nipype* 1.11.0" in md and "*fMRIPrep* 23.2.1" in md
    assert "numpy 2.4.6" in md
    assert "fMRIPrep's brain mask" in md and "nilearn's `simple` denoising strategy" in md
    assert "the 6 head-motion parameters, their temporal derivatives and the squares of both" in md
    assert "(27 regressors in total, demeaned)" in md
    assert "linear detrending, no temporal filtering" in md and "z-scoring" in md
    assert "censored (scrubbing" not in md and "Power et al. 2014" not in md and "Behzadi" not in md
    # every reference in the text has its BibTeX entry, and no more
    keys = set(re.findall(r"@article\{(\w+),", bib))
    assert keys == {"fmriprep", "nipype", "nilearn", "wang2024", "ciric2017", "satterthwaite2013"}
    assert md.count("\n- ") == len(keys)


@pytest.mark.parametrize("fd,dvars", [(0.2, 1.5), (0.5, 3.0)])
def test_scrubbing_states_its_thresholds_and_cites_power_2014(fd, dvars):
    md, bib = methods([_scrubbing(fd, dvars)])
    assert f"framewise displacement above {fd} mm or standardized DVARS above {dvars}" in md
    assert "fewer than 5 consecutive kept volumes" in md
    assert "Power et al. 2014" in md and "@article{power2014," in bib


@pytest.mark.parametrize("changes,expected", [
    ({"low_pass": 0.08, "high_pass": 0.01}, "Butterworth band-pass 0.01-0.08 Hz filter (order 5)"),
    ({"high_pass": 0.008, "filter": "cosine"}, "discrete cosine high-pass filter at 0.008 Hz"),
    ({"low_pass": 0.1}, "Butterworth low-pass 0.1 Hz"),
    ({"standardize": "psc"}, "percent signal change"),
    ({"standardize": None}, "no scaling"),
    ({"detrend": False}, "no detrending"),
    ({"smoothing_fwhm": 6.0}, "spatial smoothing (6 mm FWHM)"),
    ({"dummy_scans": 4}, "the first 4 volumes"),
    ({"mask_strategy": "epi"}, "`compute_epi_mask`"),
    ({"demean": False}, "not demeaned"),
    ({"confounds": ["rot_x"]}, "the columns `rot_x`"),
])
def test_each_setting_changes_the_text(changes, expected):
    default, _ = methods([_run()])
    md, _ = methods([_run(**changes)])
    assert expected in md and expected not in default


def test_compcor_aroma_atlas_and_lss_cite_their_papers():
    compcor = _run(denoise="compcor")
    compcor["DenoiseParameters"].update(components=["high_pass", "motion", "compcor"], compcor="anat_combined",
                                        n_compcor="all")
    aroma = _run(denoise="ica_aroma")
    aroma["DenoiseParameters"].update(components=["high_pass", "wm_csf", "ica_aroma"])
    atlas = _run(ColumnSpace="labels", Shape=[98, 100], atlas_name="Schaefer2018400Parcels7Networks")
    lss = _run(Trials={"NTrials": 12, "NValidTrials": 11, "TrialWindow": [-2.0, 16.0], "HRFLag": 5.0,
                       "TrialEdge": "nan", "TrialEstimates": "LSS (least squares separate)",
                       "HRF": "SPM canonical HRF"})
    md, bib = methods([compcor, aroma, atlas, lss])
    assert "CompCor components (anat_combined)" in md and "@article{behzadi2007," in bib
    assert "ICA-AROMA" in md and "@article{pruim2015," in bib
    assert "each of the 100 regions of Schaefer2018400Parcels7Networks" in md
    assert "from -2 to 16 s after each onset" in md and "haemodynamic lag 5 s" in md
    assert "least-squares-separate" in md and "@article{mumford2012," in bib
    assert md.count("## desc-") == 4


def test_runs_with_the_same_settings_share_one_section():
    runs = [_run(BIDSAppRun=SIDECAR["BIDSAppRun"].replace("run-1", f"run-{r}")) for r in (1, 2, 3)]
    md, _ = methods(runs + [_scrubbing(0.5)])
    assert "## desc-simple (3 runs; space MNI152NLin2009cAsym)" in md
    assert "## desc-scrubbing (1 run; space MNI152NLin2009cAsym)" in md


def test_every_reference_has_text_and_bibtex():
    for key, (text, bib) in REFERENCES.items():
        assert "doi:" in text and bib.startswith(f"@article{{{key},") and bib.count("{") == bib.count("}")
    with pytest.raises(ValueError, match="no run sidecar"):
        methods([])


def test_explicit_confounds_are_said_to_replace_the_strategys_regressors():
    """--confounds regresses out its columns instead of the strategy's: the text must not credit the strategy's
    regressors (nor cite its benchmark) for columns the user chose; scrubbing's censoring stays."""
    meta = _scrubbing(0.5)
    meta["Parameters"]["confounds"] = ["global_signal"]
    meta["ConfoundColumns"] = ["global_signal"]
    meta["DenoiseParameters"]["components"] = ["scrub"]
    md, bib = methods([meta])
    assert ("Confound regressors were the columns `global_signal` of fMRIPrep's confounds file, in place of the "
            "regressors of nilearn's `scrubbing` strategy (1 regressors in total, demeaned).") in md
    assert "following nilearn's" not in md and "Ciric" not in md and "censored (scrubbing" in md
    meta["Parameters"]["denoise"] = "none"
    meta["DenoiseParameters"]["components"] = []
    md, _ = methods([meta])
    assert "Confound regressors were the columns `global_signal` of fMRIPrep's confounds file (1 regressors" in md


def test_the_mask_of_a_joined_trial_model_is_said_to_be_the_intersection():
    joined = _run(trial_estimates="optimized", MaskSource="intersection of the fMRIPrep brain masks a_desc-brain_mask"
                                                          ".nii.gz, b_desc-brain_mask.nii.gz (the runs ...)")
    md, _ = methods([joined])
    assert "fMRIPrep's brain mask of each run, intersected across the runs whose trial estimates are fitted" in md
    md, _ = methods([_run(trial_estimates="optimized")])  # a model of one run (--run 1): its own mask
    assert "intersected" not in md and "fMRIPrep's brain mask of each run" in md
