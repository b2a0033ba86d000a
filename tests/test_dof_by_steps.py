"""On long runs the degrees of freedom come from ``op @ op.T`` computed step by step (O(T^2)): the same count as
the Gram matrix's BLAS product, with censoring, confounds and every filter type."""

import numpy as np
import pytest

from bidsapp.core import signal


@pytest.mark.parametrize("seed", range(6))
def test_dof_by_steps_equals_the_gram_product(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(900, 1600))
    t_r = float(rng.choice([0.5, 0.72, 1.0]))
    keep = np.setdiff1d(np.arange(n), rng.choice(n, n // 20, replace=False)) if seed % 2 else None
    conf = rng.normal(size=(n, int(rng.integers(1, 40)))) if seed % 3 else None
    band = [(0.1, 0.01), (None, 0.01), (0.1, None)][seed % 3]
    op = signal.cleaning_operator(n, t_r=t_r, confounds=conf, low_pass=band[0], high_pass=band[1], sample_mask=keep)
    assert signal.stepwise_is_cheaper(op)  # the case where the steps compute the Gram matrix
    a = op.matrix
    gram = a @ a.T
    assert op.dof == signal.operator_dof(a)
    np.testing.assert_allclose(op.steps.apply(a.T), gram, rtol=0, atol=1e-12 * np.abs(gram).max())
