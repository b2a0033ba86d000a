"""The step-wise path keeps its BLAS calls on the calling thread (no BLAS from several threads at once)."""

import threading

import numpy as np

from bidsapp.core import signal


def test_only_the_filter_runs_in_the_pool(monkeypatch):
    """Spline fill, detrending and projection call BLAS, whose own threads would oversubscribe the cores if
    called from the pool's threads (measured: twice the CPU time at T = 1,200); the filter runs there."""
    main = threading.get_ident()
    seen = {"prepare": set(), "finish": set(), "filter": set()}
    prepare, finish, filt = signal.OperatorSteps.prepare, signal.OperatorSteps.finish, signal.sosfiltfilt_columns

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            seen[name].add(threading.get_ident())
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(signal.OperatorSteps, "prepare", spy("prepare", prepare))
    monkeypatch.setattr(signal.OperatorSteps, "finish", spy("finish", finish))
    monkeypatch.setattr(signal, "sosfiltfilt_columns", spy("filter", filt))
    rng = np.random.default_rng(0)
    n = 400
    keep = np.setdiff1d(np.arange(n), [50, 51, 200])
    op = signal.cleaning_operator(n, t_r=1.0, confounds=rng.normal(size=(n, 8)), low_pass=0.1, high_pass=0.01,
                                  sample_mask=keep)
    X = rng.normal(size=(n, 3 * signal.FILTER_COLUMNS)) + 100
    got = signal.apply_operator(X, op, method="steps", threads=3, chunk_size=X.shape[1])
    assert seen["prepare"] == seen["finish"] == {main}
    assert seen["filter"] - {main}, "the filter should run in the pool's threads"
    dense = signal.apply_operator(X, op, method="dense")
    np.testing.assert_allclose(got, dense, rtol=0, atol=1e-9)
