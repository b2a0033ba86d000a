"""LSS estimability is decided per trial: collinear *other* regressors are reduced to their span."""

from __future__ import annotations

import numpy as np
import pytest

from bidsapp.core import events as ev
from bidsapp.core import signal


def _events(tmp_path, rows):
    path = tmp_path / "events.tsv"
    path.write_text("onset\tduration\ttrial_type\n" + "".join(f"{o}\t{d}\t{t}\n" for o, d, t in rows))
    return ev.read_events(path)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trials_estimable_when_two_other_types_are_identical(tmp_path, seed):
    """Types b and c have identical regressors (same onsets and durations): every a-trial's own beta is
    estimable and equals least squares with the duplicate dropped; b and c trials are not estimable."""
    rng = np.random.default_rng(seed)
    n, t_r = 150, 2.0
    a_onsets = np.sort(rng.choice(np.arange(6, 280, 14.0), 6, replace=False)) + rng.uniform(0, 2, 6)
    b_onsets = [31.0, 157.0]
    rows = [(o, 1.0, "a") for o in a_onsets] + [(o, 2.0, t) for o in b_onsets for t in ("b", "c")]
    events = _events(tmp_path, sorted(rows))
    op = signal.cleaning_operator(n, t_r=t_r, filter=None)
    Y = rng.normal(size=(n, 5)) * np.array([1, 10, 100, 0.1, 1000])
    Y = signal.apply_operator(Y, op, standardize=None)
    est = ev.lss_estimates(Y, op.matrix, op.kept, events, t_r=t_r)
    # the reference: numpy least squares on the cleaned per-trial design, without the duplicate type
    times = ev.volume_times(n, t_r)
    raw = ev.hrf_regressors(times, events.onset, events.duration, [np.array([k]) for k in range(len(events))])
    cleaned = op.matrix @ raw
    types = np.array(events.trial_type)
    for i in np.flatnonzero(types == "a"):
        other_a = cleaned[:, (types == "a") & (np.arange(len(types)) != i)].sum(axis=1)
        design = np.column_stack([cleaned[:, i], other_a, cleaned[:, types == "b"].sum(axis=1), np.ones(n)])
        assert np.linalg.matrix_rank(design) == 4  # with the duplicate c column it would be 4 of 5
        ref = np.linalg.lstsq(design, Y, rcond=None)[0][0]
        assert est.valid[i] and est.reason[i] == ""
        scale = np.abs(Y).max(axis=0)
        np.testing.assert_allclose(est.betas[i], ref, atol=1e-9 * scale.max(), rtol=1e-6)
    for i in np.flatnonzero(types != "a"):
        assert not est.valid[i] and np.isnan(est.betas[i]).all()
        assert "own regressor is not estimable (collinear" in est.reason[i]


def test_equal_to_nilearn_first_level_for_an_estimable_trial(tmp_path):
    """The same a-trial beta from nilearn's GLM (OLS) on the design with the duplicate type left out."""
    from nilearn.glm.first_level import run_glm

    rng = np.random.default_rng(7)
    n, t_r = 120, 2.0
    rows = [(o, 1.0, "a") for o in (10.0, 52.0, 95.0, 140.0, 190.0)] + [(o, 2.0, t) for o in (30.0, 120.0)
                                                                        for t in ("b", "c")]
    events = _events(tmp_path, sorted(rows))
    op = signal.cleaning_operator(n, t_r=t_r, detrend=False, filter=None)
    Y = rng.normal(size=(n, 3))
    est = ev.lss_estimates(Y, op.matrix, op.kept, events, t_r=t_r)
    raw = ev.hrf_regressors(ev.volume_times(n, t_r), events.onset, events.duration,
                            [np.array([k]) for k in range(len(events))])
    types = np.array(events.trial_type)
    i = int(np.flatnonzero(types == "a")[2])
    others = (types == "a") & (np.arange(len(types)) != i)
    design = np.column_stack([raw[:, i], raw[:, others].sum(1), raw[:, types == "b"].sum(1), np.ones(n)])
    labels, results = run_glm(Y, design, noise_model="ols")
    ref = results[labels[0]].theta[0]
    np.testing.assert_allclose(est.betas[i], ref, rtol=1e-6, atol=1e-8)
    assert est.valid[i]
