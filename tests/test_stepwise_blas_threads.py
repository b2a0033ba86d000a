"""Column chunks run in threads with BLAS held to one thread (no oversubscription); the threads change no number."""

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from bidsapp.core import signal


def _blas_threads() -> int:
    return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")


@pytest.mark.parametrize("method", ["dense", "steps"])
def test_chunks_run_in_threads_with_one_blas_thread(monkeypatch, method):
    """Spline fill, detrending, projection and the dense product call BLAS from the chunk threads: BLAS is then
    held to one thread (measured before: several threads each calling a two-thread BLAS took twice the CPU)."""
    seen = []
    job = signal._ChunkJob.__call__

    def spy(self, cols, buffers):
        seen.append((threading.get_ident(), _blas_threads()))
        return job(self, cols, buffers)

    monkeypatch.setattr(signal._ChunkJob, "__call__", spy)
    rng = np.random.default_rng(0)
    n = 400
    keep = np.setdiff1d(np.arange(n), [50, 51, 200])
    op = signal.cleaning_operator(n, t_r=1.0, confounds=rng.normal(size=(n, 8)), low_pass=0.1, high_pass=0.01,
                                  sample_mask=keep)
    X = rng.normal(size=(n, 3000)) + 100
    one = signal.apply_operator(X, op, method=method, threads=1, chunk_size=256)
    seen.clear()
    three = signal.apply_operator(X, op, method=method, threads=3, chunk_size=256)
    assert len({t for t, _ in seen}) > 1 and {b for _, b in seen} == {1}
    assert np.array_equal(signal.apply_operator(X, op, method=method, threads=2, chunk_size=256), one)
    assert np.array_equal(one, three)
    np.testing.assert_allclose(three, signal.apply_operator(X, op, method="dense" if method == "steps" else "steps"),
                               rtol=0, atol=1e-9)


def test_the_memory_model_knows_the_cleaning_buffers():
    from bidsapp.execution import memory

    assert (memory.CLEAN_BUFFER_BYTES, memory.CLEAN_MIN_COLUMNS, memory.CLEAN_THREADS) == (
        signal.BUFFER_BYTES, signal.MIN_STEPWISE_COLUMNS, signal.CLEAN_THREADS)
    import inspect

    assert inspect.signature(signal.apply_operator).parameters["chunk_size"].default == memory.CLEAN_CHUNK
