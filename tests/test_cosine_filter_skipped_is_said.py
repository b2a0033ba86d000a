"""``--filter cosine`` adds no drift when the confounds already hold cosine drifts (nilearn's rule: fMRIPrep's
``cosine`` columns, which ``--denoise simple`` selects): the array is then the one without the filter. That is said
(a warning), recorded (the sidecar's ``CosineDrifts``: 0) and written in the methods text, never claimed applied."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from bidsapp.cli.run import main
from bidsapp.core import signal


def _drifts(n: int, t_r: float, high_pass: float) -> np.ndarray:
    return signal.cosine_drift(high_pass, n, t_r)


def test_the_operator_counts_the_drifts_it_adds_and_warns_when_none():
    n, t_r, rng = 120, 2.0, np.random.default_rng(0)
    motion = rng.normal(size=(n, 6))
    fmriprep_cosines = _drifts(n, t_r, 1 / 128)  # fMRIPrep's cosine columns: the first drifts of any cut-off
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        op = signal.cleaning_operator(n, t_r=t_r, confounds=motion, filter="cosine", high_pass=0.05)
    assert op.n_drifts == _drifts(n, t_r, 0.05).shape[1] > 0
    with pytest.warns(UserWarning, match=r"filter='cosine' with high_pass=0.05 Hz adds no drift: confound column 6 "
                                         r"correlates above 0.9 with one of its cosine drifts"):
        op = signal.cleaning_operator(n, t_r=t_r, confounds=np.hstack([motion, fmriprep_cosines]),
                                      filter="cosine", high_pass=0.05)
    assert op.n_drifts == 0
    trend = np.linspace(1, -1, n)[:, None]  # a slow drift of another column: the same rule, said with its name
    names = [f"motion{k}" for k in range(6)] + ["scanner_drift_down"]
    with pytest.warns(UserWarning, match=r"confound 'scanner_drift_down' correlates above 0.9"):
        op = signal.cleaning_operator(n, t_r=t_r, confounds=np.hstack([motion, trend]), filter="cosine",
                                      high_pass=0.02, confound_names=names)
    assert op.n_drifts == 0


def test_the_sidecar_and_methods_say_the_filter_added_nothing(demo, tmp_path):
    root, _ = demo
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="adds no drift"):
        assert main([str(root), str(out), "participant", "--participant-label", "01", "--run", "1", "--nprocs", "1",
                     "--filter", "cosine", "--high-pass", "0.05"]) == 0
    meta = json.loads(next(out.glob("sub-01/func/*_timeseries.json")).read_text())
    assert meta["CosineDrifts"] == 0 and meta["Parameters"]["high_pass"] == 0.05
    text = (out / "logs" / "CITATION.md").read_text()
    assert "no cosine high-pass filter at 0.05 Hz: a confound correlated above 0.9 with one of its drift" in text
    assert "a discrete cosine high-pass filter at 0.05 Hz" not in text
