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


@pytest.mark.parametrize("n", [5, 64, 301])
def test_the_gram_matrix_centred_in_place_gives_the_expression_s_bits(n):
    """``_centred_gram`` works in its argument's memory, in the order of ``S - r - r.T + mean(r)``: the same bits."""
    a = np.random.default_rng(n).normal(size=(n, n + 3))
    gram = a @ a.T
    r = gram.mean(axis=0)
    expected = gram - r[None, :] - r[:, None] + r.mean()
    out = signal._centred_gram(gram)
    assert out is gram
    np.testing.assert_array_equal(out, expected)
