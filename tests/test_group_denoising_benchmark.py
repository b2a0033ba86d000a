"""The group level ranks denoising strategies on a dataset where motion leaks into the signal.

The real CLI runs the participant level three times (``--denoise none``, ``simple``, ``scrubbing``, with an
atlas of 20 regions) over 12 participants (tests/motion_leak.py), then the group level. Every number of
``group_denoising.tsv`` is recomputed here from the run outputs with scipy directly.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from nilearn.connectome import ConnectivityMeasure
from scipy import stats

from bidsapp.cli.run import main
from tests.motion_leak import MotionDataset, make_motion_dataset

STRATEGIES = ("none", "simple", "scrubbing")


@pytest.fixture(scope="module")
def leaked(tmp_path_factory):
    """The dataset and its outputs, built once per session (pytest-xdist workers share it; tests only read it)."""
    # the session's base folder (xdist workers: their common parent), never the folder shared by every session
    # of the machine, whose outputs another checkout's code may have written
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "motion-leak"
    root.mkdir(exist_ok=True)
    with open(root.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = make_motion_dataset(root) if not (root / "done").exists() else None
        if data is not None:
            out = root / "out"
            for strategy in STRATEGIES:
                code = main([str(data.bids), str(out), "participant", "--denoise", strategy, "--atlas",
                             str(data.atlas), "--atlas-labels", str(data.atlas_labels), "--nprocs", "2",
                             "--work-dir", str(root / "work")])
                assert code == 0
            assert main([str(data.bids), str(out), "group"]) == 0
            (root / "done").write_text(json.dumps(data.mean_fd))
    mean_fd = json.loads((root / "done").read_text())
    data = MotionDataset(bids=root / "bids", atlas=root / "atlas-leak_dseg.nii.gz",
                         atlas_labels=root / "atlas-leak_dseg.tsv", mean_fd=mean_fd, excluded="12")
    return data, root / "out"


def _table(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)


def test_strategies_are_ranked_as_the_leak_was_built(leaked):
    _, out = leaked
    t = _table(out / "group_denoising.tsv").set_index("desc").loc[list(STRATEGIES)]
    for metric in ("qcfc_median_abs", "qcfc_significant_percent", "qcfc_fdr_significant_percent"):
        values = t[metric].to_numpy()
        assert values[0] > values[1] > values[2], (metric, values)
    assert t.loc["scrubbing", "qcfc_fdr_significant_percent"] < 5 < t.loc["none", "qcfc_fdr_significant_percent"]
    dd = t["distance_dependence"]  # the linear artefact is spatially smooth: short edges gain most
    assert dd["none"] < 0 and dd["none"] == dd.min()
    lost = t["dof_lost_mean"].to_numpy()
    assert lost[0] < lost[1] < lost[2]  # more regressors, then censored volumes too
    assert (t["n_runs_excluded"] == 1).all() and (t["n_participants"] == 11).all()
    assert (t["covariates"] == "age, sex=M").all() and (t["n_regions"] == 20).all()
    assert t["denoise"].tolist() == list(STRATEGIES)


def _participant_inputs(out, bids, desc):
    """Connectivity, mean FD, age, sex of the 11 kept participants, read from the outputs with pandas."""
    conn, fd, names = [], [], None
    for sub in range(1, 12):
        stem = (out / f"sub-{sub:02d}" / "func" /
                f"sub-{sub:02d}_task-rest_space-MNI152NLin2009cAsym_atlas-leak_desc-{desc}")
        X = np.load(f"{stem}_timeseries.npy").astype(np.float64)
        iu = np.triu_indices(X.shape[1], 1)
        conn.append(ConnectivityMeasure(kind="correlation").fit_transform([X])[0][iu])  # the benchmark's code
        fd.append(_table(f"{stem}_samples.tsv")["framewise_displacement"].mean())
        feats = _table(f"{stem}_features.tsv")
        names = feats["name"].to_numpy()
        centroids = feats[["x", "y", "z"]].to_numpy()
    part = _table(bids / "participants.tsv").set_index("participant_id").loc[[f"sub-{s:02d}" for s in range(1, 12)]]
    cov = np.column_stack([np.ones(11), part["age"].to_numpy(float), (part["sex"] == "M").to_numpy(float)])
    dist = np.linalg.norm(centroids[iu[0]] - centroids[iu[1]], axis=1)
    return np.array(conn), np.array(fd), cov, dist, names[iu[0]], names[iu[1]]


@pytest.mark.parametrize("desc", STRATEGIES)
def test_each_metric_equals_a_direct_scipy_computation(leaked, desc):
    data, out = leaked
    conn, fd, cov, dist, a, b = _participant_inputs(out, data.bids, desc)
    m_res = fd - cov @ np.linalg.lstsq(cov, fd, rcond=None)[0]
    r = np.array([stats.pearsonr(c - cov @ np.linalg.lstsq(cov, c, rcond=None)[0], m_res).statistic
                  for c in conn.T])
    dof = 11 - 2 - 2
    p = 2 * stats.t.sf(np.abs(r) * np.sqrt(dof / (1 - r**2)), dof)
    row = _table(out / "group_denoising.tsv").set_index("desc").loc[desc]
    assert row["qcfc_edges"] == 190
    assert row["qcfc_significant_percent"] == pytest.approx(100 * np.mean(p < 0.05))
    assert row["qcfc_fdr_significant_percent"] == pytest.approx(100 * np.mean(stats.false_discovery_control(p) <= 0.05))
    assert row["qcfc_median_abs"] == pytest.approx(np.median(np.abs(r)), rel=1e-6)
    assert row["distance_dependence"] == pytest.approx(stats.spearmanr(r, dist).statistic, rel=1e-6, abs=1e-9)
    edges = _table(out / "group_denoising_edges.tsv")
    edges = edges[edges["desc"] == desc]
    assert edges["region_a"].tolist() == a.tolist() and edges["region_b"].tolist() == b.tolist()
    np.testing.assert_allclose(edges["qcfc"], r, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(edges["qcfc_p"], p, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(edges["distance"], dist, rtol=1e-9)
    runs = _table(out / "group_denoising_runs.tsv")
    runs = runs[runs["desc"] == desc].set_index("participant_id")
    for sub in ("sub-01", "sub-12"):
        stem = f"{sub}_task-rest_space-MNI152NLin2009cAsym_atlas-leak_desc-{desc}"
        meta = json.loads((out / sub / "func" / f"{stem}_timeseries.json").read_text())
        n = len(_table(out / sub / "func" / f"{stem}_samples.tsv"))
        assert runs.loc[sub, "dof_lost"] == n - meta["DegreesOfFreedom"]
    assert runs.loc["sub-12", "excluded"] and "mean framewise displacement" in runs.loc["sub-12", "exclusion_reason"]
    assert runs.loc["sub-12", "fd_mean"] == pytest.approx(data.mean_fd["12"], rel=1e-5)
    assert not runs.drop("sub-12")["excluded"].any()


def test_every_table_has_its_column_descriptions_and_the_report_its_section(leaked):
    _, out = leaked
    for name in ("group_denoising", "group_denoising_runs", "group_denoising_edges"):
        header = (out / f"{name}.tsv").read_text().splitlines()[0].split("\t")
        described = json.loads((out / f"{name}.json").read_text())
        assert list(described) == header and all(d["Description"] for d in described.values())
    report = (out / "group.html").read_text()
    assert "Denoising benchmark" in report and "sub-12_task-rest" in report and "mean framewise displacement" in report
    assert "group_denoising.tsv" in (out / ".bidsignore").read_text()
    from bidsapp.reports.denoising import figure_data  # what QC-FC histograms and distance plots need

    data = figure_data(out)
    edges = _table(out / "group_denoising_edges.tsv")
    assert sorted(data) == [f"atlas-leak_space-MNI152NLin2009cAsym_desc-{d}" for d in sorted(STRATEGIES)]
    for label, arrays in data.items():
        rows = edges[edges["desc"] == label.rsplit("desc-", 1)[1]]
        np.testing.assert_array_equal(arrays["qcfc"], rows["qcfc"].to_numpy())
        np.testing.assert_array_equal(arrays["distance"], rows["distance"].to_numpy())


def test_exclusion_thresholds_are_options(leaked, tmp_path):
    _, out = leaked
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    assert main([str(leaked[0].bids), str(copy), "group", "--exclude-fd-mean", "0.5", "--exclude-censored-fraction",
                 "none"]) == 0
    t = _table(copy / "group_denoising.tsv")
    assert (t["n_runs_excluded"] == 0).all() and (t["n_participants"] == 12).all()
    assert main([str(leaked[0].bids), str(copy), "group", "--exclude-fd-mean", "none", "--exclude-fd-threshold", "0.1",
                 "--exclude-censored-fraction", "0.3"]) == 0
    runs = _table(copy / "group_denoising_runs.tsv")
    high = runs["high_motion_fraction"] > 0.3
    assert high.any() and (runs["excluded"] == high).all()
    assert runs.loc[high, "exclusion_reason"].str.contains("framewise displacement > 0.1 mm").all()


def test_a_single_strategy_or_too_few_participants_is_said_not_an_error(leaked, tmp_path, capsys):
    data, out = leaked
    single = tmp_path / "single"
    shutil.copytree(out, single, ignore=shutil.ignore_patterns("*desc-simple*", "*desc-scrubbing*", "group_*"))
    assert main([str(data.bids), str(single), "group"]) == 0
    t = _table(single / "group_denoising.tsv")
    assert len(t) == 1 and "only one strategy" in t.loc[0, "note"] and np.isfinite(t.loc[0, "qcfc_median_abs"])
    assert main([str(data.bids), str(single), "group", "--participant-label", "01", "02", "12"]) == 0
    t = _table(single / "group_denoising.tsv")
    assert t.loc[0, "n_participants"] == 2 and t.loc[0, "qcfc_edges"] == 0
    assert np.isnan(t.loc[0, "qcfc_median_abs"])
    assert "QC-FC needs at least 3 participants, 2 left after exclusion" in t.loc[0, "note"]
    assert "QC-FC needs at least 3 participants" in (single / "group.html").read_text()


def test_without_region_columns_nothing_is_compared_and_old_tables_go(leaked, tmp_path, capsys):
    """No run with region columns (voxel outputs only): the tables of an earlier invocation are removed (they would
    describe other runs) and the report says why there is no benchmark."""
    from bidsapp.reports.denoising import benchmark_section
    from bidsapp.workflows.denoising_benchmark import TABLES, ExclusionRule, write_benchmark

    _, out = leaked
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    assert write_benchmark(copy, [], ExclusionRule(), None) == []
    assert not [name for name in TABLES if (copy / name).exists() or (copy / name).with_suffix(".json").exists()]
    assert "no run has region columns" in capsys.readouterr().out
    assert "Not computed: no run has region columns" in benchmark_section(copy)
