"""A voxel run's features table has a row per voxel (250,000 rows): the participant page parses it again only for
region runs (their coverage), and the column descriptions read only its header (each full parse
cost 0.75 s of CPU per run)."""

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


def test_tsv_header_is_the_first_line_of_plain_gzipped_and_bom_tables(tmp_path):
    import gzip

    import pytest

    from bidsapp.core.tsv import read_tsv, read_tsv_header

    body = "index\ti\tj\tk\n" + "".join(f"{n}\t{n}\t0\t1\n" for n in range(1000))
    plain, zipped, bom = tmp_path / "a_features.tsv", tmp_path / "b.tsv.gz", tmp_path / "c.tsv"
    plain.write_text(body)
    with gzip.open(zipped, "wt") as fh:
        fh.write(body)
    bom.write_text("\ufeff\n" + body, encoding="utf-8")
    for path in (plain, zipped, bom):
        assert read_tsv_header(path) == read_tsv(path)[0] == ["index", "i", "j", "k"]
    (tmp_path / "empty.tsv").write_text("\n")
    with pytest.raises(ValueError, match="empty TSV file"):
        read_tsv_header(tmp_path / "empty.tsv")


def test_column_descriptions_of_a_features_table_come_from_its_header(tmp_path):
    import json

    from bidsapp.outputs import descriptions

    table = tmp_path / "sub-01_task-rest_features.tsv"
    table.write_text("i\tj\tk\tx\ty\tz\n" + "".join(f"{n}\t0\t1\t0.0\t2.0\t4.0\n" for n in range(5000)))
    meta = json.loads(descriptions.write_sidecar(table, {}, space="voxels").read_text())
    assert meta == descriptions.describe("features", ["i", "j", "k", "x", "y", "z"], {}, "voxels")
