"""The participant page reads a run's tables without pandas (importing it and parsing a voxel run's features table
cost 0.3 s of a 0.9 s page): :func:`read_run_tables` gives the values :func:`read_run` gives, checked the same way."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bidsapp.outputs.reader import Table, read_run, read_run_tables, read_table


@pytest.fixture(scope="module")
def sidecars(demo_outputs, tmp_path_factory):
    """Every run of the demo's outputs (voxel and grayordinate runs, trials and betas), and an atlas run (names,
    labels and coverage in its features table)."""
    import nibabel as nib

    from bidsapp.cli.run import main

    demo = demo_outputs / "bidsapp-demo-output"
    base = tmp_path_factory.mktemp("atlas-run")
    img = nib.load(next((demo / "bids" / "derivatives" / "fmriprep" / "sub-01").rglob("*run-1*desc-brain_mask.nii.gz")))
    brain = np.asanyarray(img.dataobj) > 0
    labels = np.where(brain, 1 + np.indices(brain.shape)[0] * 4 // brain.shape[0], 0).astype(np.int16)
    nib.save(nib.Nifti1Image(labels, img.affine), base / "atlas-quarters_dseg.nii.gz")
    (base / "atlas-quarters_dseg.tsv").write_text("index\tname\n" + "".join(f"{k}\tq {k}\n" for k in range(1, 5)))
    assert main([str(demo / "bids"), str(base / "out"), "participant", "--participant-label", "01", "--run", "1",
                 "--nprocs", "1", "--atlas", str(base / "atlas-quarters_dseg.nii.gz")]) == 0
    found = [*sorted((demo / "derivatives-bidsapp").glob("sub-*/**/*_timeseries.json")),
             *sorted((base / "out").glob("sub-*/**/*_timeseries.json"))]
    assert len(found) >= 6
    return found


def _same_column(table: Table, df: pd.DataFrame, name: str) -> None:
    column = df[name]
    if column.dtype == bool:
        np.testing.assert_array_equal(table.flags(name), column.to_numpy())
    elif column.dtype.kind in "fiu" or str(column.dtype) == "Int64":
        np.testing.assert_array_equal(table.floats(name), column.to_numpy(dtype=np.float64, na_value=np.nan))
    else:
        assert table.text(name) == ["n/a" if pd.isna(v) else str(v) for v in column], name


def test_tables_hold_the_values_of_the_dataframes(sidecars):
    kinds = set()
    for sc in sidecars:
        run, light = read_run(sc), read_run_tables(sc)
        kinds.add(run.kind)
        for table, df in ((light.samples, run.samples), (light.features, run.features)):
            assert table.header == list(df.columns) and len(table) == len(df)
            for name in df.columns:
                _same_column(table, df, name)
        np.testing.assert_array_equal(light.framewise_displacement, run.framewise_displacement)
        np.testing.assert_array_equal(light.kept, run.kept)
        assert light.shape == run.X.shape and light.n_volumes == run.n_volumes
        assert (light.mask_file, light.kind, light.outputs) == (run.mask_file, run.kind, run.outputs)
    assert {"voxels", "labels"} <= kinds and len(kinds) >= 3, kinds


@pytest.mark.parametrize("text, rows", [
    ("a\tb\n1\t2\n3\t4\n", 2),
    ("a\tb\n1\t2\n3\t4", 2),  # no final newline
    ("\ufeffa\tb\r\n1\t2\r\n\r\n3\tn/a\r\n", 2),  # byte-order mark, CRLF, a blank line
    ("\n\na\tb\n\n1\t2\n\n", 1),  # blank lines before the header and between rows
    ("a\tb\n", 0),
])
def test_rows_are_counted_as_pandas_counts_them(tmp_path, text, rows):
    path = tmp_path / "t_samples.tsv"
    path.write_bytes(text.encode("utf-8"))
    table, df = Table(path), read_table(path)
    assert len(table) == len(df) == rows and table.header == list(df.columns) == ["a", "b"]
    np.testing.assert_array_equal(table.floats("b"), df["b"].to_numpy(dtype=np.float64, na_value=np.nan))


def test_a_wrong_table_is_named(tmp_path):
    path = tmp_path / "t_samples.tsv"
    path.write_text("kept\tx\nTrue\t1\nyes\t2\n")
    with pytest.raises(ValueError, match=r"t_samples.tsv: column 'kept' holds 'yes'"):
        Table(path).flags("kept")
    path.write_text("kept\tx\nTrue\t1\nFalse\n")
    with pytest.raises(ValueError, match=r"t_samples.tsv: line 3 has 1 fields but the header has 2"):
        Table(path).text("x")
    path.write_text("\n\n")
    with pytest.raises(ValueError, match="empty TSV file"):
        Table(path)


def test_building_a_page_imports_no_pandas(demo_outputs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp", out)
    code = ("import sys\nfrom pathlib import Path\nfrom bidsapp.reports.html import participant_report\n"
            f"page = participant_report(Path({str(out)!r}), '01')\n"
            "print(page.stat().st_size > 0, 'pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["True", "False"]


@pytest.mark.parametrize("ending", ["_betas.tsv", "_samples.tsv"])
def test_both_readers_refuse_a_table_of_another_length_with_the_same_message(demo_outputs, tmp_path, ending):
    import json

    out = tmp_path / "out"
    shutil.copytree(demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp", out)
    sc = next(p for p in sorted(out.glob("sub-*/**/*_timeseries.json"))
              if p.with_name(p.name.replace("_timeseries.json", ending)).exists())
    path = sc.with_name(sc.name.replace("_timeseries.json", ending))
    lines = path.read_text().splitlines(keepends=True)
    if ending == "_betas.tsv":  # a trial fewer than the rows of _betas.npy
        lines = lines[:-1]
    else:  # a kept volume fewer than the rows of the array
        kept = lines[0].rstrip("\n").split("\t").index("kept")
        row = next(i for i, line in enumerate(lines) if line.split("\t")[kept] == "True")
        lines[row] = "\t".join("False" if j == kept else v for j, v in enumerate(lines[row].split("\t")))
    path.write_text("".join(lines))
    meta = json.loads(sc.read_text())
    for entry in meta["OutputFiles"]:
        if entry["Path"] == path.name:
            entry["Size"] = path.stat().st_size
            entry.pop("SHA256", None)
    sc.write_text(json.dumps(meta))
    with pytest.raises(ValueError) as full:
        read_run(sc)
    with pytest.raises(ValueError) as light:
        read_run_tables(sc)
    assert str(full.value) == str(light.value) and "outputs are inconsistent" in str(full.value)


def test_a_participant_run_with_its_page_imports_no_pandas_or_matplotlib(demo, tmp_path):
    """The saving is real only if nothing else in the run imports pandas (it did not before the page either); the
    page's figures are SVG written by bidsapp, so the run does not import matplotlib either."""
    root, _ = demo
    argv = [str(root), str(tmp_path / "out"), "participant", "--participant-label", "01", "--run", "1",
            "--nprocs", "1", "--work-dir", str(tmp_path / "w")]
    code = (f"import sys\nfrom bidsapp.cli.run import main\ncode = main({argv!r})\n"
            "print('pandas' in sys.modules, 'matplotlib' in sys.modules)\nsys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "out" / "sub-01.html").exists()
    assert done.stdout.split()[-2:] == ["False", "False"]  # the page was drawn, without pandas or matplotlib


def test_a_run_written_as_tsv_gz_only_has_the_shape_of_its_rows(demo, tmp_path):
    """Without a .npy, the page counts the rows of the _timeseries.tsv.gz instead of parsing them (pandas)."""
    from bidsapp.cli.run import main
    from bidsapp.reports.html import participant_report

    root, _ = demo
    out = tmp_path / "out"
    assert main([str(root), str(out), "participant", "--participant-label", "01", "--run", "1", "--nprocs", "1",
                 "--output-format", "tsv.gz", "--work-dir", str(tmp_path / "w")]) == 0
    sidecars = sorted(out.glob("sub-01/**/*_timeseries.json"))
    assert sidecars and not list(out.rglob("*_timeseries.npy"))
    for sc in sidecars:
        run, light = read_run(sc), read_run_tables(sc)
        assert light.shape == run.X.shape and light.shape[0] == int(light.kept.sum())
        np.testing.assert_array_equal(light.X, run.X)
    assert "carpet plot before and after cleaning" in participant_report(out, "01").read_text()
