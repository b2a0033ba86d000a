"""The denoising benchmark's connectivity is what a user finds in the run's meas-PearsonCorrelation _relmat.tsv
(nilearn's ConnectivityMeasure, Ledoit-Wolf, as the benchmark's code), and the group report says so."""

from __future__ import annotations

import shutil

import numpy as np

from bidsapp.cli.run import main
from bidsapp.outputs.reader import read_run
from bidsapp.reports.denoising import CONNECTIVITY_SOURCE
from bidsapp.reports.run_report import read_relmat
from bidsapp.workflows.denoising_benchmark import read_benchmark_run


def test_benchmark_edges_are_the_relmat_values(demo_outputs):
    out = demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp-connectivity"
    sidecars = sorted(out.glob("sub-*/**/func/*_timeseries.json"))
    assert len(sidecars) >= 3
    for sidecar in sidecars:
        run = read_benchmark_run(read_run, sidecar)
        relmat = sidecar.with_name(sidecar.name.replace("_timeseries.json", "_meas-PearsonCorrelation_relmat.tsv"))
        matrix, names = read_relmat(relmat)
        assert names == run.regions
        i, j = np.triu_indices(len(names), 1)
        np.testing.assert_allclose(run.connectivity, matrix[i, j], atol=1e-6)  # the file holds 6 decimals
        X = np.load(sidecar.with_name(sidecar.name.replace(".json", ".npy"))).astype(np.float64)
        plain = np.corrcoef(X.T)[i, j]
        assert np.abs(run.connectivity - plain).max() > 1e-6  # not the plain Pearson correlation


def test_the_group_report_says_which_connectivity_was_scored(demo_outputs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp-connectivity", out)
    assert main([str(demo_outputs / "bidsapp-demo-output" / "bids"), str(out), "group"]) == 0
    report = (out / "group.html").read_text()
    assert CONNECTIVITY_SOURCE.replace("'", "&#x27;") in report or CONNECTIVITY_SOURCE in report
    assert "Ledoit-Wolf" in (out / "group_denoising.json").read_text()
