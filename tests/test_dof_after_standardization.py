"""With a Butterworth filter, the degrees of freedom left after standardization are those of the operator followed
by the removal of each column's mean (a red team's finding: a model whose only remaining direction was a constant per
column was counted as 1 degree of freedom, accepted, and gave an all-zero array; without the filter it was refused)."""

from __future__ import annotations

import numpy as np
import pytest

from bidsapp.core import signal


def _satterthwaite(a: np.ndarray) -> int:
    """Independent count: squared singular values of ``a`` (an SVD, not the Gram trick)."""
    lam = np.linalg.svd(a, compute_uv=False) ** 2
    if not lam.sum() ** 2 > signal.ZERO_GAIN**4:
        return 0
    return int(np.floor(lam.sum() ** 2 / (lam**2).sum() + 1e-9))


def test_only_a_constant_left_is_refused_with_a_filter_as_without():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 5)) * 10 + 1000
    conf = rng.normal(size=(20, 18))
    with pytest.raises(ValueError, match="0 degrees of freedom"):
        signal.clean(x, t_r=2.0, confounds=conf)
    with pytest.raises(ValueError, match="0 degrees of freedom"):
        signal.clean(x, t_r=2.0, confounds=conf, high_pass=0.007)


@pytest.mark.parametrize("seed", range(40))
def test_centred_count_equals_an_svd_of_the_centred_operator(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(16, 90))
    t_r = float(rng.uniform(0.5, 3.0))
    nyq = 0.5 / t_r
    kind = rng.choice(["high", "low", "band"])
    high = float(rng.uniform(0.005, 0.3) * nyq) if kind in ("high", "band") else None
    low = float(rng.uniform(0.4, 0.95) * nyq) if kind in ("low", "band") else None
    k = int(rng.integers(0, max(1, n // 2)))
    conf = rng.normal(size=(n, k)) if k else None
    mask = np.sort(rng.choice(n, size=n - int(rng.integers(0, n // 5 + 1)), replace=False))
    try:
        op = signal.cleaning_operator(n, t_r=t_r, detrend=bool(rng.integers(0, 2)), confounds=conf, low_pass=low,
                                      high_pass=high, sample_mask=mask)
    except ValueError as exc:  # too short for the filter: refused before any count
        assert "Butterworth filter needs more" in str(exc)
        return
    m = op.matrix.shape[0]
    centred = op.matrix - op.matrix.mean(axis=0)
    assert op.dof == _satterthwaite(op.matrix)
    # removing the mean never adds a degree of freedom (an effective count alone could grow by one)
    assert signal.degrees_of_freedom(op, "zscore_sample") == min(op.dof, _satterthwaite(centred))
    assert signal.degrees_of_freedom(op, None) == op.dof
    assert signal.degrees_of_freedom(op, "zscore_sample") <= op.dof <= m
    if signal.degrees_of_freedom(op, "zscore_sample") < 1:
        with pytest.raises(ValueError, match="degrees of freedom"):
            signal.check_degrees_of_freedom(op, "zscore_sample")


@pytest.mark.parametrize("m", [40, 255, 256, 257, 700])
@pytest.mark.parametrize("by_steps", [False, True])
def test_block_wise_counts_equal_the_gram_matrix_s(m, by_steps):
    """``_gram_dofs`` (the Gram matrix's sums taken 256 columns at a time, the centred ones by the projection's
    identities) gives the counts of the whole Gram matrix, centred explicitly; the same whatever the threads."""
    n = m + 2
    kept = np.setdiff1d(np.arange(n), [n // 2, n // 2 + 1])  # two volumes censored in the middle
    op = signal.cleaning_operator(n, t_r=0.8, confounds=np.random.default_rng(m).normal(size=(n, 3)),
                                  low_pass=0.2, high_pass=0.02, sample_mask=kept)
    a = op.matrix
    assert a.shape[0] == m
    centred = a - a.mean(axis=0)
    expected = (signal.operator_dof(a, gram=a @ a.T), signal.operator_dof(centred, gram=centred @ centred.T))
    steps = op.steps if by_steps else None
    assert [signal._gram_dofs(a, steps, threads=t) for t in (1, 2, 3)] == [expected] * 3


def test_block_wise_counts_hold_no_second_operator_sized_array():
    """At T = 2,000 the counts' buffers stay below one T x T float64 array (32 MB): the Gram matrix is not
    held (it was, with a transposed copy of the operator)."""
    import tracemalloc

    op = signal.cleaning_operator(2000, t_r=0.5, low_pass=0.1, high_pass=0.01)
    tracemalloc.start()
    try:
        signal._gram_dofs(op.matrix, op.steps, threads=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.75 * op.matrix.nbytes, peak  # two blocks in flight: ~17 MB
