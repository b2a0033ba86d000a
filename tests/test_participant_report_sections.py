"""The participant report's run sections on real outputs: QC metrics (the sidecar's QC object or computed),
connectivity matrices when the run has them, older outputs without report data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bidsapp.reports.html import participant_report
from bidsapp.reports.run_report import qc_metrics, read_relmat, read_run


@pytest.fixture
def outputs(demo_outputs, tmp_path):
    """A copy of the demo's output folder (sub-01: two voxel runs with trials and LSS)."""
    out = tmp_path / "out"
    shutil.copytree(demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp", out)
    return out


def _sidecar(out):
    return sorted(out.glob("sub-01/func/*run-1*_timeseries.json"))[0]


def _without_qc(sidecar):
    """Outputs written before the sidecar had its QC object (the report computes the metrics itself)."""
    meta = json.loads(sidecar.read_text())
    meta.pop("QC", None)
    sidecar.write_text(json.dumps(meta))
    return sidecar


def test_computed_qc_equals_a_direct_computation(outputs):
    run = read_run(_without_qc(_sidecar(outputs)))
    data = dict(np.load(run.get("_reportdata.npz")))
    qc = qc_metrics(run, data)
    fd = run.run.framewise_displacement
    nss = np.zeros(run.run.n_volumes, bool)
    nss[run.meta["NonSteadyState"]["Volumes"]] = True
    assert qc["FramewiseDisplacementMean"] == (pytest.approx(np.nanmean(fd[~nss])), "mm")
    assert qc["FramewiseDisplacementMax"][0] == pytest.approx(np.nanmax(fd[~nss]))
    assert qc["NonSteadyStateVolumes"][0] == nss.sum() == 2
    assert qc["CensoredVolumeCount"][0] == len(run.meta["CensoredVolumes"]) - 2
    assert qc["DegreesOfFreedomLost"][0] == run.run.n_volumes - run.meta["DegreesOfFreedom"]
    assert qc["StandardizedDVARSMeanBefore"][0] == pytest.approx(np.nanmean(data["dvars_before"]))
    ok = np.isfinite(fd) & np.isfinite(data["dvars_after"])
    r = np.corrcoef(fd[ok], data["dvars_after"][ok])[0, 1]
    assert qc["FramewiseDisplacementDVARSCorrelationAfter"] == (pytest.approx(r), "Pearson r")
    assert qc["TrialsValidSegments"][0] + qc["TrialsInvalidSegments"][0] == run.meta["Trials"]["NTrials"]


def test_the_sidecar_qc_object_and_its_units_win(outputs):
    sidecar = _sidecar(outputs)
    meta = json.loads(sidecar.read_text())
    meta["QC"] = {"FramewiseDisplacementMean": {"Value": 0.123456, "Units": "mm"},
                  "TemporalSNRMedianBefore": {"Value": 87.5, "Units": "ratio"}, "CensoredFraction": 0.25}
    sidecar.write_text(json.dumps(meta))
    assert qc_metrics(read_run(sidecar), None) == {"FramewiseDisplacementMean": (0.123456, "mm"),
                                                   "TemporalSNRMedianBefore": (87.5, "ratio"),
                                                   "CensoredFraction": (0.25, "fraction")}
    report = participant_report(outputs, "01").read_text()
    assert "<td>TemporalSNRMedianBefore</td><td>87.5</td><td>ratio</td>" in report
    assert "<td>FramewiseDisplacementMean</td><td>0.123</td><td>mm</td>" in report


def test_a_listed_relmat_is_drawn(outputs):
    sidecar = _sidecar(outputs)
    meta = json.loads(sidecar.read_text())
    names = ["visual", "motor", "default"]
    m = np.corrcoef(np.random.default_rng(0).normal(size=(3, 40)))
    stem = sidecar.name[: -len("_timeseries.json")]
    relmat = sidecar.with_name(f"{stem}_meas-PearsonCorrelation_relmat.tsv")
    relmat.write_text("node\t" + "\t".join(names) + "\n"
                      + "".join(f"{n}\t" + "\t".join(f"{v:.6f}" for v in row) + "\n" for n, row in zip(names, m)))
    meta["OutputFiles"].append({"Path": relmat.name})
    sidecar.write_text(json.dumps(meta))
    values, read_names = read_relmat(relmat)
    assert read_names == names and np.allclose(values, m, atol=1e-6)
    report = participant_report(outputs, "01").read_text()
    assert "alt='connectivity matrix PearsonCorrelation'" in report and "3 regions" in report


def test_outputs_without_report_data_still_get_a_report(outputs):
    for sidecar in outputs.glob("sub-01/func/*_timeseries.json"):
        meta = json.loads(sidecar.read_text())
        meta["OutputFiles"] = [f for f in meta["OutputFiles"] if not f["Path"].endswith("_reportdata.npz")]
        meta.pop("QC", None)  # outputs older than both the report data and the sidecar's QC object
        sidecar.write_text(json.dumps(meta))
    report = participant_report(outputs, "01").read_text()
    assert report.count("report data missing): rerun the participant level") == 4  # 2 runs x (columns, carpet)
    assert "alt='trial timeline'" in report and "StandardizedDVARSMeanBefore" not in report
