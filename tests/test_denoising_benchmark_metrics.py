"""Each denoising-benchmark metric equals its direct numpy / scipy computation (seeded sweep of cases)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import pdist

from bidsapp.core import denoising_benchmark as db

SEEDS = range(8)


def _case(seed: int):
    """Participants x edges connectivity with a motion effect of random size on some edges."""
    rng = np.random.default_rng(seed)
    n_sub, n_reg = int(rng.integers(6, 40)), int(rng.integers(3, 12))
    n_edge = db.n_edges(n_reg)
    motion = rng.gamma(2.0, 0.05 * (1 + seed), n_sub)
    effect = rng.normal(0, rng.uniform(0, 3), n_edge) * (rng.random(n_edge) < 0.5)
    scale = 10.0 ** rng.uniform(-3, 2)  # the metrics must not depend on the connectivity's scale
    conn = scale * (rng.normal(0, 0.2, (n_sub, n_edge)) + np.outer(motion - motion.mean(), effect))
    age = rng.uniform(8, 60, n_sub)
    sex = rng.integers(0, 2, n_sub).astype(float)
    return rng, conn, motion, np.column_stack([age, sex]), n_reg


@pytest.mark.parametrize("seed", SEEDS)
def test_qcfc_equals_pearsonr_per_edge(seed):
    _, conn, motion, _, _ = _case(seed)
    res = db.qcfc(conn, motion)
    for e in range(conn.shape[1]):
        ref = stats.pearsonr(conn[:, e], motion)
        assert res.r[e] == pytest.approx(ref.statistic, rel=1e-9, abs=1e-12)
        assert res.p[e] == pytest.approx(ref.pvalue, rel=1e-7, abs=1e-15)
    assert res.n_participants == conn.shape[0] and res.n_covariates == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_partial_qcfc_equals_residual_correlation(seed):
    """With age and sex: Pearson correlation of the least-squares residuals on [1, age, sex]; p from the t
    distribution with n - 2 - 2 degrees of freedom."""
    _, conn, motion, cov, _ = _case(seed)
    res = db.qcfc(conn, motion, cov)
    Z = np.column_stack([np.ones(len(motion)), cov])
    m_res = motion - Z @ np.linalg.lstsq(Z, motion, rcond=None)[0]
    dof = len(motion) - 4
    for e in range(conn.shape[1]):
        c_res = conn[:, e] - Z @ np.linalg.lstsq(Z, conn[:, e], rcond=None)[0]
        r = stats.pearsonr(c_res, m_res).statistic
        p = 2 * stats.t.sf(abs(r) * np.sqrt(dof / (1 - r**2)), dof)
        assert res.r[e] == pytest.approx(r, rel=1e-8, abs=1e-12)
        assert res.p[e] == pytest.approx(p, rel=1e-6, abs=1e-15)
    assert res.n_covariates == 2 and res.dof == dof


def test_collinear_covariate_costs_no_degree_of_freedom():
    _, conn, motion, cov, _ = _case(3)
    with_constant = db.qcfc(conn, motion, np.column_stack([cov, np.full(len(motion), 7.0)]))
    plain = db.qcfc(conn, motion, cov)
    assert with_constant.n_covariates == 2
    np.testing.assert_allclose(with_constant.r, plain.r, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(with_constant.p, plain.p, rtol=1e-7, atol=1e-15)


def test_edge_with_nan_participant_has_no_qcfc():
    _, conn, motion, _, _ = _case(1)
    conn[2, 0] = np.nan
    res = db.qcfc(conn, motion)
    assert np.isnan(res.r[0]) and np.isnan(res.p[0])
    assert np.isfinite(res.r[1:]).all()
    assert db.summarize(res)["qcfc_edges"] == conn.shape[1] - 1


@pytest.mark.parametrize("seed", SEEDS)
def test_fdr_equals_scipy_benjamini_hochberg(seed):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 1, 200), rng.uniform(0, 0.01, int(rng.integers(0, 60)))])
    p[rng.random(p.size) < 0.1] = np.nan
    tested = ~np.isnan(p)
    want = np.zeros(p.size, bool)
    want[tested] = stats.false_discovery_control(p[tested], method="bh") <= db.ALPHA
    np.testing.assert_array_equal(db.fdr_bh(p), want)


@pytest.mark.parametrize("seed", SEEDS)
def test_distance_dependence_equals_spearman_of_ranks(seed):
    rng, conn, motion, _, n_reg = _case(seed)
    centroids = rng.uniform(-70, 70, (n_reg, 3))
    dist = db.edge_distances(centroids)
    np.testing.assert_allclose(dist, pdist(centroids), rtol=1e-12)
    r = db.qcfc(conn, motion).r
    rho, p = db.distance_dependence(r, dist)
    direct = np.corrcoef(stats.rankdata(r), stats.rankdata(dist))[0, 1]
    assert rho == pytest.approx(direct, rel=1e-9, abs=1e-12)
    assert 0 <= p <= 1


@pytest.mark.parametrize("seed", SEEDS)
def test_summary_equals_direct_counts(seed):
    rng, conn, motion, _, n_reg = _case(seed)
    dist = db.edge_distances(rng.uniform(-70, 70, (n_reg, 3)))
    res = db.qcfc(conn, motion)
    out = db.summarize(res, dist)
    ps = np.array([stats.pearsonr(conn[:, e], motion).pvalue for e in range(conn.shape[1])])
    rs = np.array([stats.pearsonr(conn[:, e], motion).statistic for e in range(conn.shape[1])])
    assert out["qcfc_significant_percent"] == pytest.approx(100 * np.mean(ps < 0.05))
    fdr = stats.false_discovery_control(ps, method="bh") <= 0.05
    assert out["qcfc_fdr_significant_percent"] == pytest.approx(100 * np.mean(fdr))
    assert out["qcfc_median_abs"] == pytest.approx(np.median(np.abs(rs)), rel=1e-9)
    assert out["distance_dependence"] == pytest.approx(stats.spearmanr(rs, dist).statistic, rel=1e-8, abs=1e-12)
    assert out["qcfc_edges"] == conn.shape[1]


@pytest.mark.parametrize("seed", SEEDS)
def test_connectivity_vector_equals_nilearn_ledoit_wolf(seed):
    """As the benchmark's code: nilearn's ConnectivityMeasure(kind="correlation") with its default estimator
    (Ledoit-Wolf), which shrinks the plain Pearson correlation toward 0."""
    from nilearn.connectome import ConnectivityMeasure

    rng = np.random.default_rng(seed)
    n_reg = int(rng.integers(2, 30))
    X = rng.normal(0, 1, (int(rng.integers(20, 200)), n_reg)) @ rng.normal(0, 1, (n_reg, n_reg))
    X = X * 10.0 ** rng.uniform(-4, 4, n_reg) + rng.normal(0, 1e3, n_reg)  # columns of any scale and offset
    i, j = np.triu_indices(n_reg, 1)
    vec = db.connectivity_vector(X)
    ref = ConnectivityMeasure(kind="correlation").fit_transform([X])[0]
    np.testing.assert_allclose(vec, ref[i, j], rtol=1e-6, atol=1e-9)
    assert np.all(np.abs(vec) <= np.abs(np.corrcoef(X.T)[i, j]) + 1e-12)  # shrunk, never inflated


def test_constant_region_gives_nan_edges():
    X = np.random.default_rng(0).normal(0, 1, (50, 4))
    X[:, 2] = 3.0
    vec = db.connectivity_vector(X)
    i, j = db.edge_index(4)
    assert np.isnan(vec[(i == 2) | (j == 2)]).all() and np.isfinite(vec[(i != 2) & (j != 2)]).all()


def test_dof_loss_and_exclusion_rule():
    lost, frac = db.dof_loss(np.array([100, 200]), np.array([70, 190]))
    np.testing.assert_allclose(lost, [30, 10])
    np.testing.assert_allclose(frac, [0.3, 0.05])
    with pytest.raises(ValueError, match="degrees of freedom"):
        db.dof_loss(np.array([10]), np.array([11]))
    fd = np.r_[np.nan, np.full(9, 0.1)]
    fd[[3, 4, 5]] = 0.3
    assert db.mean_fd(fd) == pytest.approx(np.mean(fd[1:]))
    assert db.high_motion_fraction(fd, 0.2) == pytest.approx(3 / 9)  # over the 9 volumes with an FD
    assert db.exclusion_reason(0.1, 0.3) is None
    assert "0.300 mm > 0.25 mm" in db.exclusion_reason(0.3, 0.0)
    assert db.exclusion_reason(0.3, 0.0, fd_mean_max=None) is None
    assert "90.0% of volumes" in db.exclusion_reason(0.1, 0.9)
    assert db.exclusion_reason(0.1, 0.9, censored_fraction_max=None) is None
    assert "no framewise displacement" in db.exclusion_reason(float("nan"), 0.0)


def test_high_motion_fraction_is_over_the_volumes_with_an_fd():
    """With ``--dummy-scans 0`` the run's first volume (FD n/a) was counted among the volumes: 2 of 5, not 2 of 4."""
    fd = np.r_[np.nan, 0.3, 0.1, 0.1, 0.3]
    assert db.high_motion_fraction(fd, 0.2) == 0.5
    assert np.isnan(db.high_motion_fraction(np.full(4, np.nan), 0.2))


def test_covariate_encoding():
    mat, names = db.encode_covariates({"age": ["21", "35.5", "40"], "sex": ["M", "F", "M"]})
    assert names == ["age", "sex=M"]
    np.testing.assert_array_equal(mat, [[21, 1], [35.5, 0], [40, 1]])


def test_too_few_participants_or_constant_motion_is_refused():
    conn = np.random.default_rng(0).normal(0, 1, (3, 6))
    with pytest.raises(ValueError, match="at least 5 participants"):
        db.qcfc(conn, np.array([0.1, 0.2, 0.3]), np.ones((3, 2)) * [[1, 0], [2, 1], [3, 0]])
    with pytest.raises(ValueError, match="constant"):
        db.qcfc(conn, np.full(3, 0.2))
    assert db.min_participants(0) == 3
