"""One name per QC quantity: a column name shared by the run sidecar's QC object (through the loader),
``group_runs.tsv`` and ``group_denoising_runs.tsv`` holds the same value for the same run, with the same units,
and no table names a quantity another calls otherwise. The group report shows each column with its units."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import bidsapp
from bidsapp.core.qc import QC_COLUMNS
from tests.test_group_denoising_benchmark import leaked  # noqa: F401 (the fixture: 12 participants, 3 strategies)

#: names once used for quantities that have another name now
SYNONYMS = {"mean_framewise_displacement": "fd_mean", "degrees_of_freedom": "dof"}


def _table(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)


def test_shared_columns_hold_the_same_values_and_units(leaked):  # noqa: F811
    _, out = leaked
    runs = _table(out / "group_runs.tsv").set_index("run")
    bench = _table(out / "group_denoising_runs.tsv").set_index("run")
    shared = (set(runs.columns) & set(bench.columns)) - {"participant_id", "space", "desc", "atlas"}
    assert {"fd_mean", "dof", "dof_lost", "n_volumes"} <= shared
    for stem in bench.index:
        for column in shared:
            a, b = runs.loc[stem, column], bench.loc[stem, column]
            assert a == pytest.approx(b, rel=1e-9, nan_ok=True), (stem, column, a, b)
    units = {name: {c: d.get("Units") for c, d in json.loads((out / f"{name}.json").read_text()).items()}
             for name in ("group_runs", "group_denoising_runs")}
    for column in shared:
        assert units["group_runs"][column] == units["group_denoising_runs"][column], column
    for name in ("group_runs", "group_denoising_runs", "group_denoising"):
        header = (out / f"{name}.tsv").read_text().splitlines()[0].split("\t")
        assert not set(header) & set(SYNONYMS), (name, set(header) & set(SYNONYMS))


def test_censored_fraction_means_one_thing(leaked):  # noqa: F811
    """censored_fraction is the run's censored volumes / its volumes after the non-steady-state ones, in the
    sidecar, group_runs.tsv and the loader's table; the benchmark's FD share has its own name."""
    _, out = leaked
    runs = _table(out / "group_runs.tsv").set_index("run")
    scrubbed = [s for s in runs.index if s.endswith("desc-scrubbing")]
    assert scrubbed
    for stem in scrubbed:
        sub = stem.split("_")[0]
        meta = json.loads((out / sub / "func" / f"{stem}_timeseries.json").read_text())
        samples = _table(out / sub / "func" / f"{stem}_samples.tsv")
        steady = ~samples["non_steady_state"].astype(bool)
        fraction = float((~samples["kept"].astype(bool) & steady).sum() / steady.sum())
        assert meta["QC"]["CensoredFraction"]["Value"] == pytest.approx(fraction)
        assert runs.loc[stem, "censored_fraction"] == pytest.approx(fraction)
        run = bidsapp.load(out, subject=sub, desc="scrubbing")
        assert run.qc["CensoredFraction"] == pytest.approx(fraction)  # the sidecar's name for the same value
    bench = _table(out / "group_denoising_runs.tsv")
    assert "censored_fraction" not in bench and "high_motion_fraction" in bench
    described = json.loads((out / "group_denoising_runs.json").read_text())
    assert "not censored_fraction" in described["high_motion_fraction"]["Description"].lower()


def test_the_group_report_shows_each_qc_metric_with_its_units(leaked):  # noqa: F811
    _, out = leaked
    report = (out / "group.html").read_text()
    sidecar = json.loads(next(out.glob("sub-01/func/*desc-simple_timeseries.json")).read_text())
    for key, column in QC_COLUMNS.items():
        if key in sidecar["QC"]:
            assert f"<th>{column} ({sidecar['QC'][key]['Units']})</th>" in report, column
    assert np.isfinite(_table(out / "group_runs.tsv")["fd_mean"]).all()


def test_the_loader_tables_use_the_group_names(leaked):  # noqa: F811
    """The loader's per-run QC table (``Dataset.qc``) has group_runs.tsv's columns and values."""
    _, out = leaked
    ds = bidsapp.dataset(out, kind="timeseries", y="framewise_displacement", desc="simple")
    runs = _table(out / "group_runs.tsv").set_index("run")
    qc = ds.qc.set_index("run")
    assert set(qc.columns) == set(QC_COLUMNS.values()) and set(qc.columns) <= set(runs.columns)
    for stem in qc.index:
        for column in qc.columns:
            assert qc.loc[stem, column] == pytest.approx(runs.loc[stem, column], rel=1e-9, nan_ok=True)
