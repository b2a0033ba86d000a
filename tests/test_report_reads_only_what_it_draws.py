"""The participant page reads a run's features table only when it draws from it (grayordinate structures): a
voxel run's table has a row per voxel (250,000 rows parsed for nothing took 0.75 s of CPU per run)."""

from __future__ import annotations

import shutil

from bidsapp.reports import run_report


def test_a_voxel_run_page_does_not_parse_the_features_table(demo_outputs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp", out)
    sidecar = sorted(out.glob("sub-01/func/*run-1*_timeseries.json"))[0]
    real = run_report.read_tsv

    def read_tsv(path):
        assert not str(path).endswith("_features.tsv"), "the voxel run's features table was parsed"
        return real(path)

    monkeypatch.setattr(run_report, "read_tsv", read_tsv)
    section = run_report.run_section(sidecar)
    assert "carpet plot before and after cleaning" in section


class _Run:
    def __init__(self, path):
        self.path = path

    def get(self, end):
        return self.path if end == "_features.tsv" else None


def test_feature_column_reads_the_column_when_the_table_has_it(tmp_path):
    table = tmp_path / "x_features.tsv"
    table.write_text("index\tstructure\tvertex\n0\tCORTEX_LEFT\t3\n1\tCORTEX_LEFT\t4\n2\tTHALAMUS_LEFT\tn/a\n")
    assert run_report._feature_column(_Run(table), "structure") == ["CORTEX_LEFT", "CORTEX_LEFT", "THALAMUS_LEFT"]
    assert run_report._feature_column(_Run(table), "label") == []
    assert run_report._feature_column(_Run(None), "structure") == []
