"""One reader of a run's outputs: the group level, the participant report and ``bidsapp.load`` read the same
values from a run, and refuse the same corrupted outputs with the same message."""

from __future__ import annotations

import csv
import json
import re
import shutil
import warnings

import numpy as np
import pytest

import bidsapp
from bidsapp.bids.naming import entities_of
from bidsapp.cli.run import main
from bidsapp.outputs.reader import read_run, stem_of
from bidsapp.reports.run_report import read_run as report_run


@pytest.fixture
def outputs(demo_outputs, tmp_path):
    """A copy of the demo's raw dataset and output folder (volume runs and sub-03's surface runs)."""
    demo = demo_outputs / "bidsapp-demo-output"
    shutil.copytree(demo / "derivatives-bidsapp", tmp_path / "out")
    return demo / "bids", tmp_path / "out"


def _group(bids, out) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Run the group level; its ``group_runs.tsv`` rows by run, and the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([str(bids), str(out), "group", "--work-dir", str(out.parent / "work")]) == 0
    with open(out / "group_runs.tsv", newline="") as fh:
        rows = {r["run"]: r for r in csv.DictReader(fh, delimiter="\t")}
    return rows, [str(w.message) for w in caught]


def _load(out, stem: str):
    return bidsapp.load(out, **entities_of(stem))


def test_group_level_and_load_read_the_same_values(outputs):
    bids, out = outputs
    rows, _ = _group(bids, out)
    sidecars = sorted(out.glob("sub-*/**/func/*_timeseries.json"))
    assert sorted(rows) == sorted(stem_of(sc) for sc in sidecars) and len(rows) >= 5
    for sc in sidecars:
        run, row = _load(out, stem_of(sc)), rows[stem_of(sc)]
        fd = run.samples["framewise_displacement"].to_numpy(dtype=np.float64, na_value=np.nan)
        assert int(row["n_volumes"]) == len(run.samples) == run.n_volumes
        assert int(row["volumes_kept"]) == run.X.shape[0] == int(run.samples["kept"].sum())
        assert int(row["n_features"]) == run.X.shape[1] == len(run.features)
        steady = np.ones(run.n_volumes, bool)
        steady[run.meta["NonSteadyState"]["Volumes"]] = False
        assert float(row["fd_mean"]) == run.qc["FramewiseDisplacementMean"]  # the sidecar, as the loader reads it
        assert float(row["fd_mean"]) == pytest.approx(np.nanmean(fd[steady]), rel=1e-6)  # = its samples table
        assert int(row["mask_voxels"]) == run.meta["MaskVoxelCount"]
        assert row["space"] == run.entities.get("space", "func")
        report = report_run(sc)  # the participant report reads the same object
        np.testing.assert_array_equal(report.run.framewise_displacement, fd)
        np.testing.assert_array_equal(report.run.X, run.X)
        assert report.run.mask_file == run.mask_file and report.run.kind == run.kind


def _append_a_byte(sc):
    """A listed output changed after the sidecar was written (its size differs)."""
    with open(sc.with_name(stem_of(sc) + "_features.tsv"), "a") as fh:
        fh.write("\n")


def _drop_a_feature(sc):
    """Outputs mixed by hand: the features table has one row fewer than the array has columns, and the sidecar
    was edited to list its new size (so only the consistency check can tell)."""
    path = sc.with_name(stem_of(sc) + "_features.tsv")
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    meta = json.loads(sc.read_text())
    for entry in meta["OutputFiles"]:
        if entry["Path"] == path.name:
            entry["Size"] = path.stat().st_size
            entry.pop("SHA256", None)
    sc.write_text(json.dumps(meta))


@pytest.mark.parametrize("corrupt, error", [(_append_a_byte, FileNotFoundError), (_drop_a_feature, ValueError)])
def test_group_level_and_load_refuse_the_same_corruption_the_same_way(outputs, corrupt, error):
    bids, out = outputs
    sc = sorted(out.glob("sub-01/func/*run-1*_timeseries.json"))[0]
    corrupt(sc)
    with pytest.raises(error) as loaded:
        _load(out, stem_of(sc))
    with pytest.raises(error) as read:
        read_run(sc)
    with pytest.raises(error) as reported:
        report_run(sc)
    assert str(loaded.value) == str(read.value) == str(reported.value)
    assert re.search("outputs incomplete|outputs are inconsistent", str(loaded.value))
    rows, caught = _group(bids, out)
    assert stem_of(sc) not in rows and len(rows) >= 4  # the other runs are summarized
    assert f"{stem_of(sc)}: left out of the group level: {loaded.value}" in caught
