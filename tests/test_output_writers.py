"""The writers registry: every output file comes from one declared writer, and what depends on formats
(refusals, .bidsignore, the loader, the memory model) reads the registry."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest

from bidsapp.core import columns
from bidsapp.outputs import writers

#: the oracle: formats each kind of run can be written in (a GIFTI pair may also become one dtseries.nii)
SUPPORTED = {
    "volume": {"npy", "tsv.gz", "nii.gz"},
    "cifti": {"npy", "tsv.gz", "dtseries.nii"},
    "gifti": {"npy", "tsv.gz", "dtseries.nii", "func.gii"},
}
#: suffixes the BIDS specification knows (no .bidsignore needed)
BIDS_KNOWN = ("*_timeseries.json", "*_timeseries.tsv.gz", "*_bold.nii.gz", "*_bold.dtseries.nii", "*_bold.func.gii",
              "*_desc-brain_mask.nii.gz", "*_dseg.nii.gz", "*_dseg.dlabel.nii", "*_probseg.nii.gz", "*_dseg.json",
              "*.tsv.json")


@pytest.mark.parametrize("kind", sorted(columns.KINDS))
def test_refusals_follow_the_kind(kind):
    space_cls = columns.get(kind)
    runs = ("cifti", "gifti") if space_cls.on_grayordinates else ("volume",)
    for run in runs:
        for fmt in writers.OUTPUT_FORMATS:
            why = writers.refusal([fmt], space_cls, cifti=run == "cifti")
            assert (why is None) == (fmt in SUPPORTED[run]), (kind, run, fmt, why)
            if why:
                assert why.startswith(f"--output-format {fmt} ") and "\n" not in why


def test_output_formats_and_help_come_from_the_registry():
    from bidsapp.options import OPTIONS, OUTPUT_FORMATS

    assert OUTPUT_FORMATS == ("npy", "tsv.gz", "nii.gz", "dtseries.nii", "func.gii")
    row = next(o for o in OPTIONS if o.name == "output_format")
    assert tuple(row.choices) == OUTPUT_FORMATS
    assert all(f"{fmt}: " in row.help for fmt in OUTPUT_FORMATS)


def test_named_regions_always_get_a_table_and_its_memory():
    voxels, labels = columns.get("voxels"), columns.get("labels")
    assert [w.name for w in writers.selected(["npy"], voxels)] == [
        "npy", "features", "samples", "mask", "columns image", "connectivity", "trials", "report data",
        "column descriptions"]
    assert "tsv.gz" in [w.name for w in writers.selected(["npy"], labels)]
    assert writers.sink_memory(["npy"], voxels, 10**6, 10**5) == 0
    assert writers.sink_memory(["npy"], labels, 10**6, 100) == 3 * writers.ROW_BLOCK_BYTES
    assert writers.sink_memory(["npy", "nii.gz"], voxels, 10**6, 10**5) == 3 * writers.ROW_BLOCK_BYTES
    assert writers.selected([], voxels)[0].name == "npy"  # no format asked: the array all the same


def test_a_node_file_no_writer_declares_is_refused(tmp_path):
    src = tmp_path / "undeclared.tsv"  # (hrf.tsv, this test's first example, is declared since --hrf)
    src.write_text("a\n1\n")
    ctx = SimpleNamespace(inputs=SimpleNamespace(trial_files={"undeclared_tsv": str(src)}), writer=None)
    with pytest.raises(ValueError, match="no output writer declares 'undeclared.tsv'"):
        writers.get("trials").write(ctx)


def test_rows_read_back_by_the_registry(tmp_path):
    from bidsapp.core.tsv import write_tsv_rows

    X = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    X[1, 2] = np.nan
    np.save(tmp_path / "a_timeseries.npy", X)
    write_tsv_rows(tmp_path / "a_timeseries.tsv.gz", ["x", "n/a-ish", "z"], [X[:2], X[2:]])
    assert writers.ROW_FILES == ("timeseries.npy", "timeseries.tsv.gz")
    for ending in writers.ROW_FILES:
        got = writers.read_rows(tmp_path / f"a_{ending}")
        np.testing.assert_allclose(got, X, rtol=1e-6, equal_nan=True)


def test_every_file_of_a_real_run_is_declared_and_ignored_or_bids(tmp_path):
    from bidsapp.cli.run import main
    from bidsapp.demo import make_dataset

    bids = tmp_path / "bids"
    make_dataset(bids, n_volumes=60)
    mask = next((bids / "derivatives" / "fmriprep" / "sub-01").rglob("*run-1*desc-brain_mask.nii.gz"))
    img = nib.load(mask)
    labels = np.where(np.asanyarray(img.dataobj) > 0, 1 + np.indices(img.shape)[0] % 3, 0).astype(np.int16)
    nib.save(nib.Nifti1Image(labels, img.affine), tmp_path / "atlas-three_dseg.nii.gz")
    out = tmp_path / "out"
    for extra in ([], ["--atlas", str(tmp_path / "atlas-three_dseg.nii.gz")]):
        assert main([str(bids), str(out), "participant", "--participant-label", "01", "--run", "1",
                     "--trial-estimates", "lss", "--output-format", "npy", "tsv.gz", "nii.gz", *extra]) == 0
    files = [p for p in (out / "sub-01").rglob("*") if p.is_file()]
    assert len(files) > 20
    declared = {ending for w in writers.WRITERS for ending in w.files} | {"timeseries.json"}
    ignored = writers.bidsignore()
    written_ignore = (out / ".bidsignore").read_text().splitlines()
    assert set(ignored) <= set(written_ignore)
    for f in files:
        assert any(f.name.endswith("_" + e) for e in declared), f"{f.name}: written by no declared writer"
        assert any(fnmatch.fnmatch(f.name, p) for p in ignored + list(BIDS_KNOWN)), f"{f.name}: not in .bidsignore"
    endings = {e for f in files for e in declared if f.name.endswith("_" + e)}
    assert {"timeseries.npy", "timeseries.tsv.gz", "bold.nii.gz", "betas.npy", "trials.tsv", "dseg.nii.gz",
            "features.json"} <= endings
    assert Path(out / ".bidsignore").exists()


@pytest.mark.parametrize("formats", [["nii.gz"], ["dtseries.nii"], ["nii.gz", "func.gii"]])
def test_formats_bidsapp_cannot_read_back_alone_are_refused_before_any_work(demo, tmp_path, capsys, formats):
    """The loader, the report and the group level read a run's rows from npy or tsv.gz: without one of them the
    run was written, then its report failed on 'incomplete' outputs (exit 1, every rerun too)."""
    from bidsapp.cli.run import main

    out = tmp_path / "out"
    assert main([str(demo[0]), str(out), "participant", "--participant-label", "01", "--run", "1", "--nprocs", "1",
                 "--output-format", *formats]) == 2
    assert "read a run's rows from npy or tsv.gz; add npy" in capsys.readouterr().err
    assert not out.exists()
    assert main([str(demo[0]), str(out), "participant", "--participant-label", "01", "--run", "1", "--nprocs", "1",
                 "--output-format", "tsv.gz", "nii.gz"]) == 0
