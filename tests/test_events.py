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
    with pytest.raises(ValueError, match=r"row 1, column 'duration': negative duration"):
        ev.read_events(_write(tmp_path / "c.tsv", "onset\tduration\n1\t-1\n"))
    with pytest.raises(ValueError, match="onset is n/a"):
        ev.read_events(_write(tmp_path / "d.tsv", "onset\tduration\nn/a\t1\n"))
    with pytest.raises(ValueError, match="'duration' is missing"):
        ev.read_events(_write(tmp_path / "e.tsv", "onset\n1\n"))


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
