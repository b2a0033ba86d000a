import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bidsapp.core import confounds as cf
from tests.conftest import nilearn_data_dir

FILES = {
    "v21": "test-v21_desc-confounds_timeseries",   # fMRIPrep >= 21
    "v1x": "test_desc-confounds_regressors",       # fMRIPrep 1.x
}


def _fmriprep_run(tmp_path: Path, key: str):
    """Real fMRIPrep confounds shipped by nilearn, laid out next to a BOLD stub."""
    src = nilearn_data_dir() / "interfaces" / "fmriprep" / "data"
    suffix = "timeseries" if key == "v21" else "regressors"
    stem = f"sub-01_task-rest_desc-confounds_{suffix}"
    for ext in (".tsv", ".json"):
        shutil.copy(src / f"{FILES[key]}{ext}", tmp_path / f"{stem}{ext}")
    n = sum(1 for _ in open(tmp_path / f"{stem}.tsv")) - 1
    bold = tmp_path / "sub-01_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, n), np.float32), np.eye(4)), bold)
    aroma = tmp_path / "sub-01_task-rest_space-MNI152NLin6Asym_desc-smoothAROMAnonaggr_bold.nii.gz"
    shutil.copy(bold, aroma)
    return tmp_path / f"{stem}.tsv", bold, aroma


CASES = [
    ("simple", {}), ("simple", {"motion": "basic"}), ("simple", {"motion": "power2", "wm_csf": "full"}),
    ("simple", {"motion": "derivatives", "global_signal": "full"}), ("simple", {"demean": False}),
    ("scrubbing", {}), ("scrubbing", {"fd_threshold": 0.2, "std_dvars_threshold": 3, "scrub": 0}),
    ("scrubbing", {"scrub": 10, "fd_threshold": 0.3}),
    ("compcor", {}), ("compcor", {"compcor": "temporal_anat_separated", "n_compcor": 2}),
    ("compcor", {"compcor": "anat_separated"}), ("compcor", {"compcor": "temporal", "n_compcor": 1}),
    ("compcor", {"compcor": "temporal_anat_combined", "global_signal": "basic"}),
    ("ica_aroma", {}), ("ica_aroma", {"wm_csf": "full"}),
]


@pytest.mark.parametrize("key", list(FILES))
@pytest.mark.parametrize("strategy,params", CASES)
def test_equals_nilearn_load_confounds_strategy(tmp_path, key, strategy, params):
    from nilearn.interfaces.fmriprep import load_confounds_strategy

    tsv, bold, aroma = _fmriprep_run(tmp_path, key)
    table = cf.read_confounds(tsv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref, ref_mask = load_confounds_strategy(str(aroma if strategy == "ica_aroma" else bold), strategy, **params)
    except ValueError:
        with pytest.raises(ValueError, match="missing|needs"):
            cf.select_confounds(table, strategy, **params)
        return
    if ref_mask is not None and len(ref_mask) == 0:  # nilearn returns all-NaN confounds here
        with pytest.raises(ValueError, match="censors all"):
            cf.select_confounds(table, strategy, **params)
        return
    ours = cf.select_confounds(table, strategy, **params)
    assert ours.names == list(ref.columns)
    np.testing.assert_allclose(ours.values, ref.to_numpy(), rtol=1e-10, atol=1e-10)
    if ref_mask is None:
        assert ours.sample_mask is None
    else:
        np.testing.assert_array_equal(ours.sample_mask, ref_mask)


def test_none_strategy_and_explicit_columns(tmp_path):
    tsv, _, _ = _fmriprep_run(tmp_path, "v1x")
    table = cf.read_confounds(tsv)
    none = cf.select_confounds(table, "none")
    assert none.names == [] and none.values.shape == (table.n_volumes, 0)
    assert none.sample_mask is not None and none.non_steady_state.sum() == table.n_volumes - none.sample_mask.size
    cols = cf.select_confounds(table, "simple", columns=["trans_x", "csf"])
    assert cols.names == ["csf", "trans_x"]
    assert np.isfinite(cols.values).all() and abs(cols.values[none.sample_mask].mean()) < 1e-8
    with pytest.raises(ValueError, match=r"\['nope'\].*explicit confound columns"):
        cf.select_confounds(table, "simple", columns=["nope"])


def test_missing_columns_named(tmp_path):
    tsv = tmp_path / "sub-01_desc-confounds_timeseries.tsv"
    cols = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    tsv.write_text("\t".join(cols[:2] + ["csf"]) + "\n0\t0\t1\n1\t1\t2\n")
    full = tmp_path / "sub-02_desc-confounds_timeseries.tsv"
    full.write_text("\t".join(cols) + "\n" + "0\t" * 5 + "0\n" + "1\t" * 5 + "1\n")
    with pytest.raises(ValueError, match=r"'trans_z'.*motion=full.*'simple'"):
        cf.select_confounds(cf.read_confounds(tsv), "simple")
    with pytest.raises(ValueError, match="JSON sidecar"):
        cf.select_confounds(cf.read_confounds(full), "compcor", motion="basic")


def test_unknown_strategy_and_model(tmp_path):
    tsv, _, _ = _fmriprep_run(tmp_path, "v21")
    table = cf.read_confounds(tsv)
    with pytest.raises(ValueError, match="Unknown denoising strategy 'fancy'"):
        cf.select_confounds(table, "fancy")
    with pytest.raises(ValueError, match="Unknown motion model 'extreme'"):
        cf.select_confounds(table, "simple", motion="extreme")


def test_camelcase_fmriprep_1_0(tmp_path):
    tsv = tmp_path / "sub-01_task-rest_bold_confounds.tsv"
    rng = np.random.default_rng(0)
    header = ["CSF", "WhiteMatter", "GlobalSignal", "stdDVARS", "FramewiseDisplacement",
              "X", "Y", "Z", "RotX", "RotY", "RotZ", "Cosine00", "NonSteadyStateOutlier00"]
    rows = []
    for i in range(20):
        vals = rng.normal(size=len(header) - 1).tolist() + [1.0 if i == 0 else 0.0]
        rows.append(["n/a" if (i == 0 and h in ("stdDVARS", "FramewiseDisplacement")) else f"{v:.5f}"
                     for h, v in zip(header, vals)])
    tsv.write_text("\t".join(header) + "\n" + "\n".join("\t".join(r) for r in rows) + "\n")
    sel = cf.select_confounds(cf.read_confounds(tsv), "simple", motion="basic")
    assert sel.names == sorted(["cosine00", "csf", "white_matter", "trans_x", "trans_y", "trans_z",
                                "rot_x", "rot_y", "rot_z"])
    np.testing.assert_array_equal(sel.sample_mask, np.arange(1, 20))


def test_non_numeric_cell(tmp_path):
    tsv = tmp_path / "c.tsv"
    tsv.write_text("trans_x\n0.1\nabc\n")
    with pytest.raises(ValueError, match="row 2, column 'trans_x': 'abc' is not a number"):
        cf.read_confounds(tsv)


def test_dummy_scans_for_every_strategy(tmp_path):
    """Non-steady-state censoring is independent of the strategy; dummy_scans=N overrides."""
    tsv, _, _ = _fmriprep_run(tmp_path, "v21")
    table = cf.read_confounds(tsv)
    nss_cols = [c for c in table.columns if "non_steady_state" in c]
    auto = np.zeros(table.n_volumes, bool)
    for c in nss_cols:
        auto |= table.columns[c] != 0
    assert auto.any()
    for strategy in ("none", "simple", "compcor"):
        sel = cf.select_confounds(table, strategy)
        np.testing.assert_array_equal(sel.non_steady_state, auto)
        assert "non_steady_state_outlier" in sel.non_steady_state_source
        sel = cf.select_confounds(table, strategy, dummy_scans=5)
        np.testing.assert_array_equal(sel.sample_mask, np.arange(5, table.n_volumes))
        assert sel.parameters["dummy_scans"] == 5 and "first 5" in sel.non_steady_state_source
    flagged, source = cf.non_steady_state(30, "auto", None)
    assert not flagged.any() and "no confounds file" in source
    flagged, _ = cf.non_steady_state(30, "3", None)
    assert flagged.sum() == 3 and flagged[:3].all()
    with pytest.raises(ValueError, match="dummy_scans must be 'auto' or a number"):
        cf.parse_dummy_scans("-1")
    with pytest.raises(ValueError, match="censors all 30 volumes"):
        cf.non_steady_state(30, 30)


def test_scrubbing_combines_with_explicit_columns(tmp_path):
    """Explicit columns no longer turn scrubbing off; only applied parameters are recorded."""
    tsv, _, _ = _fmriprep_run(tmp_path, "v21")
    table = cf.read_confounds(tsv)
    preset = cf.select_confounds(table, "scrubbing", fd_threshold=2, std_dvars_threshold=3, scrub=0)
    explicit = cf.select_confounds(table, "scrubbing", columns=["trans_x", "csf"], fd_threshold=2,
                                  std_dvars_threshold=3, scrub=0)
    assert preset.motion_outliers.any()
    np.testing.assert_array_equal(explicit.motion_outliers, preset.motion_outliers)
    np.testing.assert_array_equal(explicit.sample_mask, preset.sample_mask)
    assert explicit.names == ["csf", "trans_x"]
    assert explicit.parameters["fd_threshold"] == 2 and explicit.parameters["columns"] == ("trans_x", "csf")
    assert "motion" not in explicit.parameters and "wm_csf" not in explicit.parameters
    assert cf.inapplicable_parameters("simple", {"fd_threshold": 0.3, "motion": "basic", "demean": True}) == [
        "fd_threshold"]
    assert cf.inapplicable_parameters("scrubbing", {"motion": "basic", "scrub": 3}, columns=["csf"]) == ["motion"]
    assert cf.inapplicable_parameters("none", {"compcor": None}) == []
