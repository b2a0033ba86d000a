"""The group denoising benchmark compared only the runs whose regions equalled those of the first run in sort
order: one participant whose mask missed a region (sub-01) dropped the 7 others ("7 run(s) left out: regions
differ from sub-01_...'s"), a region NaN in one run (--min-coverage) removed its edges for every participant,
and distances came from the first run's masked centroids. Now each edge's QC-FC is over the participants that
have both its regions, and distances are from the median centroid over runs. Checked against scipy on runs
with motion leaking into one edge."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bidsapp.core import denoising_benchmark as db
from bidsapp.workflows.denoising_benchmark import BenchmarkRun, ExclusionRule, benchmark_rows

REGIONS = ["left_back", "right_back", "left_middle", "right_middle", "left_front", "right_front"]
CENTROIDS = np.array([[-10.0, -30, 0], [10, -30, 0], [-12, 0, 5], [12, 0, 5], [-8, 30, 10], [8, 30, 10]])
NO_RULE = ExclusionRule(fd_mean_max=None, censored_fraction_max=None)


def _runs(seed: int, odd: str) -> tuple[list[BenchmarkRun], dict[str, np.ndarray]]:
    """8 participants, one run each; motion leaks into edge (0, 1). sub-01 is odd: it lacks region 2
    (``odd="absent"``, not a column) or has it as a column of NaN (``odd="nan"``), and its mask cuts region 1
    (a centroid 4 mm off)."""
    rng = np.random.default_rng(seed)
    runs, series = [], {}
    for k in range(8):
        sub = f"{k + 1:02d}"
        fd = rng.uniform(0.02, 0.4, 120) * rng.uniform(0.3, 1.5)
        X = rng.standard_normal((120, len(REGIONS))) @ (np.eye(len(REGIONS)) + 0.2 * rng.random((6, 6)))
        X[:, 1] += 6 * fd.mean() * X[:, 0]
        names, cents = list(REGIONS), CENTROIDS + rng.normal(0, 0.3, CENTROIDS.shape)
        if sub == "01":
            cents[1] += [4.0, 0, 0]
            if odd == "absent":
                X, names, cents = np.delete(X, 2, axis=1), [n for n in names if n != "left_middle"], \
                    np.delete(cents, 2, axis=0)
            else:
                X[:, 2] = np.nan
        series[sub] = (X, names, cents)
        runs.append(BenchmarkRun(stem=f"sub-{sub}_task-rest_atlas-demo_desc-simple", subject=sub,
                                 entities={"sub": sub, "atlas": "demo", "desc": "simple"}, denoise="simple",
                                 n_volumes=120, dof=100.0, fd=fd, connectivity=db.connectivity_vector(X),
                                 regions=names, centroids=cents,
                                 left_out=("left_middle",) if sub == "01" and odd == "nan" else ()))
    return runs, series


def _edge(X: np.ndarray, names: list[str], a: str, b: str) -> float:
    """The run's connectivity of regions a and b, from its regions with a series only (the run's relmat value:
    Ledoit-Wolf correlation, bidsapp.core.connectivity, compared with nilearn in its own tests)."""
    present = [k for k in range(X.shape[1]) if not np.isnan(X[:, k]).all()]
    kept = [names[k] for k in present]
    i, j = db.edge_index(len(present))
    vec = db.connectivity_vector(X[:, present])
    m = np.full((len(present),) * 2, np.nan)
    m[i, j] = m[j, i] = vec
    return float(m[kept.index(a), kept.index(b)])


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("odd", ["absent", "nan"])
def test_one_odd_participant_never_drops_the_others(seed, odd):
    runs, series = _runs(seed, odd)
    summary, run_rows, edges = benchmark_rows(runs, NO_RULE, None)
    assert summary["n_runs"] == [8] and summary["n_participants"] == [8] and summary["n_regions"] == [6]
    assert len(run_rows["run"]) == 8
    note = summary["note"][0]
    assert "left_middle" in note and "7 of 8 participants" in note and "sub-01" in note
    motion = {s: float(np.mean(r.fd)) for s, r in zip(series, runs)}
    for e, (a, b) in enumerate(zip(edges["region_a"], edges["region_b"])):
        have = [s for s, (_, names, _) in series.items()
                if a in names and b in names and not (odd == "nan" and s == "01" and "left_middle" in (a, b))]
        conn = [_edge(*series[s][:2], a, b) for s in have]
        r, p = stats.pearsonr(conn, [motion[s] for s in have])
        assert edges["n_participants"][e] == len(have) == (7 if "left_middle" in (a, b) else 8)
        assert edges["qcfc"][e] == pytest.approx(r, abs=1e-10)
        assert edges["qcfc_p"][e] == pytest.approx(p, rel=1e-8, abs=1e-12)
    assert summary["qcfc_edges"] == [15]


@pytest.mark.parametrize("odd", ["absent", "nan"])
def test_distances_are_the_median_centroids_over_runs_not_the_first_runs(odd):
    runs, series = _runs(5, odd)
    _, _, edges = benchmark_rows(runs, NO_RULE, None)
    per_region = {n: np.median([c[names.index(n)] for _, names, c in series.values() if n in names], axis=0)
                  for n in REGIONS}
    for a, b, d in zip(edges["region_a"], edges["region_b"], edges["distance"]):
        assert d == pytest.approx(np.linalg.norm(per_region[a] - per_region[b]), rel=1e-12)
    k = [i for i, (a, b) in enumerate(zip(edges["region_a"], edges["region_b"]))
         if {a, b} == {"left_back", "right_back"}][0]
    assert abs(edges["distance"][k] - 20.0) < 1.5  # sub-01's cut region (24 mm away from left_back) does not count


def test_qcfc_by_edge_with_a_covariate_equals_residual_correlation():
    rng = np.random.default_rng(11)
    n, n_edges = 14, 10
    motion, age = rng.uniform(0.05, 0.5, n), rng.uniform(20, 60, n)
    C = rng.standard_normal((n, n_edges)) * 0.2 + 0.5 * motion[:, None]
    C[[0, 3], 2] = np.nan
    C[5, 7] = np.nan
    result, count, problems = db.qcfc_by_edge(C, motion, age[:, None])
    assert problems == []
    for e in range(n_edges):
        rows = np.isfinite(C[:, e])
        Z = np.column_stack([np.ones(rows.sum()), age[rows]])
        res = [y - Z @ np.linalg.lstsq(Z, y, rcond=None)[0] for y in (C[rows, e], motion[rows])]
        r = stats.pearsonr(*res).statistic
        dof = rows.sum() - 3
        p = 2 * stats.t.sf(abs(r) * np.sqrt(dof / (1 - r**2)), dof)
        assert count[e] == rows.sum()
        assert result.r[e] == pytest.approx(r, abs=1e-12) and result.p[e] == pytest.approx(p, rel=1e-9)
