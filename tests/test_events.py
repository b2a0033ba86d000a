import warnings

import nibabel as nib
import numpy as np
import pytest

from bidsapp.core import confounds as cf
from bidsapp.core import events as ev
from bidsapp.core import masking, signal
from bidsapp.demo import make_dataset


def _write(path, text):
    path.write_text(text)
    return path


def test_read_events_variants_and_errors(tmp_path):
    e = ev.read_events(_write(tmp_path / "a.tsv", "onset\tduration\tresponse\n1.5\tn/a\tleft\n4\t2\tright\n"))
    assert e.trial_type == ["trial", "trial"] and list(e.duration) == [0.0, 2.0]
    assert e.extra == {"response": ["left", "right"]}
    with pytest.raises(ValueError, match=r"b.tsv: row 2, column 'onset': 'soon' is not a number"):
        ev.read_events(_write(tmp_path / "b.tsv", "onset\tduration\n1\t1\nsoon\t1\n"))
    with pytest.raises(ValueError, match=r"row 1, column 'duration': duration -1.0 is not a duration; write the "):
        ev.read_events(_write(tmp_path / "c.tsv", "onset\tduration\n1\t-1\n"))
    with pytest.raises(ValueError, match=r"row 2, column 'duration': duration inf is not a duration"):
        ev.read_events(_write(tmp_path / "c2.tsv", "onset\tduration\n1\t1\n3\tinf\n"))
    with pytest.raises(ValueError, match="onset is n/a"):
        ev.read_events(_write(tmp_path / "d.tsv", "onset\tduration\nn/a\t1\n"))
    with pytest.raises(ValueError, match="onset is -inf, not a finite number of seconds"):
        ev.read_events(_write(tmp_path / "d2.tsv", "onset\tduration\n-inf\t1\n"))
    with pytest.raises(ValueError, match="'duration' is missing"):
        ev.read_events(_write(tmp_path / "e.tsv", "onset\n1\n"))
    for header in ("onset\tduration\ttrial_type \n", "onset \tduration\ttrial_type\n"):  # not one type, trial
        with pytest.raises(ValueError, match=r"f.tsv: column name '(trial_type |onset )' has spaces around it"):
            ev.read_events(_write(tmp_path / "f.tsv", header + "1\t1\tface\n"))


def test_label_rows_overlap_and_lag(tmp_path):
    e = ev.read_events(_write(tmp_path / "a.tsv", "onset\tduration\ttrial_type\n2\t5\tface\n4\t2\thouse\n"))
    times = ev.volume_times(6, 2.0)
    trial, ttype = ev.label_rows(times, e, 2.0)
    assert trial == [None, "0", "0,1", "0", None, None]
    assert ttype[2] == "face,house"
    trial, _ = ev.label_rows(times, e, 2.0, hrf_lag=4.0)
    assert trial == [None, None, None, "0", "0,1", "0"]


def test_segments_equal_interpolated_rows():
    rng = np.random.default_rng(0)
    n, t_r = 40, 2.0
    kept = np.arange(2, n)  # two non-steady-state volumes removed
    X = rng.normal(size=(kept.size, 3)).astype(np.float32)
    onsets = np.array([9.3, 30.0, 75.5])
    seg = ev.segment_trials(X, kept, n, onsets, t_r=t_r, start_time=1.0, window=(-2, 6), edge="nan")
    np.testing.assert_allclose(seg.offsets, [-2, 0, 2, 4, 6])
    times = 1.0 + kept * t_r
    for i, onset in enumerate(onsets[:2]):
        for f in range(3):
            np.testing.assert_allclose(seg.data[i, :, f], np.interp(onset + seg.offsets, times, X[:, f]), rtol=1e-5)
    assert list(seg.valid) == [True, True, False] and seg.outside[2]
    assert np.isnan(seg.data[2, -1]).all() and np.isfinite(seg.data[2, 0]).all()
    dropped = ev.segment_trials(X, kept, n, onsets, t_r=t_r, start_time=1.0, window=(-2, 6), edge="drop")
    assert dropped.data.shape[0] == 2 and list(dropped.index) == [0, 1]


def test_segments_touching_censored_volumes():
    X = np.arange(18, dtype=np.float32)[:, None]
    kept = np.delete(np.arange(20), [7, 8])
    seg = ev.segment_trials(X, kept, 20, np.array([12.0, 30.0]), t_r=2.0, window=(0, 4))
    assert list(seg.valid) == [False, True] and seg.n_censored[0] == 2
    assert np.isnan(seg.data[0, 1:3, 0]).all() and seg.data[0, 0, 0] == X[6, 0]


def test_n_censored_counts_only_censored_volumes():
    """A sample between a kept and a censored volume counts 1 censored volume, not 2."""
    X = np.arange(19, dtype=np.float32)[:, None]
    kept = np.delete(np.arange(20), [7])
    seg = ev.segment_trials(X, kept, 20, np.array([13.0, 16.0]), t_r=2.0, window=(0, 2))  # 13, 15 s; 16, 18 s
    assert list(seg.n_censored) == [1, 0] and list(seg.valid) == [False, True]
    seg = ev.segment_trials(X, kept, 20, np.array([11.0]), t_r=2.0, window=(0, 4))  # 11, 13, 15 s
    assert seg.n_censored[0] == 1


def test_regressors_equal_nilearn():
    from nilearn.glm.first_level import compute_regressor

    frame_times = 1.0 + np.arange(80) * 2.0
    onsets, durations = np.array([10.0, 33.3, 70.0]), np.array([2.0, 0.0, 4.0])
    ours = ev.hrf_regressors(frame_times, onsets, durations, [np.array([0, 2]), np.array([1])])
    for g, idx in enumerate(([0, 2], [1])):
        ref, _ = compute_regressor(np.vstack([onsets[idx], durations[idx], np.ones(len(idx))]), "spm", frame_times)
        np.testing.assert_allclose(ours[:, g], ref[:, 0], atol=1e-10)


@pytest.fixture(scope="module")
def lss_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lss") / "bids"
    truth = make_dataset(root, n_volumes=160, seed=3)[0]
    mask = np.asanyarray(nib.load(str(truth.bold).replace("desc-preproc_bold", "desc-brain_mask")).dataobj) > 0
    X = masking.apply_mask(truth.bold, mask)
    conf_path = str(truth.bold).replace("space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz",
                                        "desc-confounds_timeseries.tsv")
    sel = cf.select_confounds(cf.read_confounds(conf_path), "simple")
    op = signal.cleaning_operator(X.shape[0], t_r=truth.t_r, confounds=sel.values, sample_mask=sel.sample_mask)
    Y = signal.apply_operator(X, op)
    events = ev.read_events(root / "sub-01" / "func" / "sub-01_task-faces_run-1_events.tsv")
    return truth, mask, X, op, Y, events


def _betas(op, Y, events, n, t_r, start_time=1.0):
    types = sorted(set(events.trial_type))
    tindex = np.array([types.index(t) for t in events.trial_type])
    ft = ev.volume_times(n, t_r, start_time)
    per_trial = ev.hrf_regressors(ft, events.onset, events.duration, [np.array([k]) for k in range(len(events))])
    per_type = np.column_stack([per_trial[:, tindex == k].sum(1) for k in range(len(types))])
    W = ev.lss_weights(op.matrix @ per_trial, op.matrix @ per_type, tindex)
    return W @ Y.astype(np.float64), op.matrix @ per_trial, op.matrix @ per_type, tindex


def test_lss_recovers_amplitudes(lss_run):
    truth, mask, X, op, Y, events = lss_run
    betas, *_ = _betas(op, Y, events, X.shape[0], truth.t_r)
    active = truth.active[mask]
    est = betas[:, active].mean(axis=1)
    assert np.corrcoef(est, truth.amplitudes)[0, 1] > 0.9
    quiet = betas[:, ~active]
    assert abs(quiet.mean()) < 0.1 * np.abs(est).mean()
    assert abs(quiet.mean()) < 3 * quiet.std() / np.sqrt(quiet.size) + 1e-3


def test_lss_equals_nilearn_first_level_model(lss_run):
    import pandas as pd
    from nilearn.glm.first_level import FirstLevelModel

    truth, mask, X, op, Y, events = lss_run
    betas, d_trials, d_types, tindex = _betas(op, Y, events, X.shape[0], truth.t_r)
    img = masking.unmask(Y, mask, np.eye(4))
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), np.eye(4))
    types = sorted(set(events.trial_type))
    for i in (0, 5):
        others = d_types.copy()
        others[:, tindex[i]] -= d_trials[:, i]
        dm = pd.DataFrame(np.column_stack([d_trials[:, i], others, np.ones(Y.shape[0])]),
                          columns=["target"] + [f"other_{t}" for t in types] + ["constant"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = FirstLevelModel(mask_img=mask_img, signal_scaling=False, noise_model="ols", minimize_memory=True)
            model.fit(img, design_matrices=[dm])
            ref = model.compute_contrast("target", output_type="effect_size")
        ref = np.asanyarray(ref.dataobj)[mask]
        assert np.abs(betas[i] - ref).max() <= 1e-3 * np.abs(ref).max()


def test_lss_ill_posed_trials_are_nan_with_reason(lss_run):
    """Per-trial models with too few degrees of freedom are NaN, not valid, with a reason."""
    truth, mask, X, _, _, events = lss_run
    rng = np.random.default_rng(0)
    n = X.shape[0]
    conf = rng.normal(size=(n, n - 9))  # leaves 7 degrees of freedom: a model for ill-posed trials
    op = signal.cleaning_operator(n, t_r=truth.t_r, confounds=conf)
    Y = signal.apply_operator(X, op)
    est = ev.lss_estimates(Y, op.matrix, op.kept, events, t_r=truth.t_r, start_time=1.0)
    assert op.dof == 7 and not est.valid.all()
    bad = ~est.valid
    assert np.isnan(est.betas[bad]).all() and np.isfinite(est.betas[est.valid]).all()
    assert all("ill-conditioned" in est.reason[i] or "rank-deficient" in est.reason[i] for i in np.flatnonzero(bad))
    conf = rng.normal(size=(n, n - 4))  # 2 dof left, 3 regressors per trial model: rank-deficient
    op = signal.cleaning_operator(n, t_r=truth.t_r, confounds=conf)
    est = ev.lss_estimates(signal.apply_operator(X, op), op.matrix, op.kept, events, t_r=truth.t_r, start_time=1.0)
    assert not est.valid.any() and np.isnan(est.betas).all()
    assert all(r.startswith("rank-deficient") for r in est.reason)
    # the well-posed default model: every trial valid, equal to lss_weights
    _, _, _, op, Y, _ = lss_run
    est = ev.lss_estimates(Y, op.matrix, op.kept, events, t_r=truth.t_r, start_time=1.0)
    ref, *_ = _betas(op, Y, events, n, truth.t_r)
    assert est.valid.all() and est.reason == [""] * len(events)
    np.testing.assert_allclose(est.betas, ref, rtol=1e-5, atol=1e-5)


def test_lss_equals_first_level_model_on_the_raw_run(lss_run):
    """Independent check: nilearn FirstLevelModel per trial on the raw run with the confounds and a linear
    drift in the design (not our cleaned design) gives our betas (Frisch-Waugh-Lovell)."""
    import pandas as pd
    from nilearn.glm.first_level import FirstLevelModel, make_first_level_design_matrix

    truth, mask, X, _, _, events = lss_run
    conf_path = str(truth.bold).replace("space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz",
                                        "desc-confounds_timeseries.tsv")
    sel = cf.select_confounds(cf.read_confounds(conf_path), "simple", motion="basic")
    n = X.shape[0]
    op = signal.cleaning_operator(n, t_r=truth.t_r, confounds=sel.values, sample_mask=sel.sample_mask, filter=None)
    Y = signal.apply_operator(X, op, standardize=None)
    est = ev.lss_estimates(Y, op.matrix, op.kept, events, t_r=truth.t_r, start_time=1.0)
    assert est.valid.all()
    frame_times = ev.volume_times(n, truth.t_r, 1.0)
    img = masking.unmask(X, mask, np.eye(4))
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), np.eye(4))
    for i in (0, 4, len(events) - 1):
        types = ["target" if k == i else t for k, t in enumerate(events.trial_type)]
        df = pd.DataFrame({"onset": events.onset, "duration": events.duration, "trial_type": types})
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*Generation of a mask has been requested",
                                    category=RuntimeWarning)
            dm = make_first_level_design_matrix(frame_times, df, hrf_model="spm", drift_model="polynomial",
                                                drift_order=1, add_regs=sel.values,
                                                add_reg_names=[f"c{j}" for j in range(sel.values.shape[1])])
            model = FirstLevelModel(mask_img=mask_img, signal_scaling=False, noise_model="ols", minimize_memory=True)
            model.fit(img, design_matrices=[dm], sample_masks=[sel.sample_mask])
            ref = np.asanyarray(model.compute_contrast("target", output_type="effect_size").dataobj)[mask]
        scale = np.abs(est.betas).max(axis=0) + 1e-3 * Y.std(axis=0)  # per-voxel scale of the betas
        rel = (np.abs(est.betas[i] - ref) / scale).max()
        print(f"trial {i}: max |ours - FirstLevelModel| = {rel:.1e} of the voxel's beta scale")
        assert rel <= 1e-4, rel


def test_events_and_confounds_with_byte_order_mark(tmp_path):
    """A UTF-8 BOM (Excel exports) is not part of the first column name."""
    p = tmp_path / "bom_events.tsv"
    p.write_bytes("\ufeffonset\tduration\ttrial_type\n1.5\t1\tface\n".encode())
    assert ev.read_events(p).onset.tolist() == [1.5]
    c = tmp_path / "bom_desc-confounds_timeseries.tsv"
    c.write_bytes("\ufefftrans_x\tcsf\n0.1\t2\n0.2\t3\n".encode())
    assert list(cf.read_confounds(c).columns) == ["trans_x", "csf"]
