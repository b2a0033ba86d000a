"""A participant run's report data take the run's mean image from the masking node's stream: the report node
never decompresses the BOLD (it used to read it a third time for its mean image), and ``_reportdata.npz``
holds the same mean as before (``mean_volume`` of the BOLD, as float32) with the BOLD's affine."""

from __future__ import annotations

import traceback
from pathlib import Path

import nibabel as nib
import numpy as np

from bidsapp import demo
from bidsapp.core import io

#: the interface modules whose nodes may read the BOLD, by node name
NODE_OF = {"report.py": "report", "extract.py": "masking", "mask.py": "mask", "provenance.py": "provenance"}


def _record_reads(monkeypatch) -> list[tuple[str, str]]:
    """(file name, node) of every volume stream opened (``.nii.gz`` or ``.nii``), the node found on the stack."""
    reads: list[tuple[str, str]] = []
    for name in ("_gzip_volumes", "_plain_volumes"):
        inner = getattr(io, name)

        def recording(path, *args, _inner=inner, **kwargs):
            frames = [Path(f.filename) for f in traceback.extract_stack()]
            node = next((NODE_OF[f.name] for f in frames if f.parent.name == "interfaces" and f.name in NODE_OF),
                        "elsewhere")
            reads.append((Path(path).name, node))
            yield from _inner(path, *args, **kwargs)

        monkeypatch.setattr(io, name, recording)
    return reads


def _run(bids: Path, out: Path, work: Path, *extra: str) -> None:
    from bidsapp.cli.run import main

    code = main([str(bids), str(out), "participant", "--participant-label", extra[0], "--run", "1",
                 "--plugin", "Linear", "--work-dir", str(work), *extra[1:]])
    assert code == 0


def test_report_data_mean_comes_from_the_masking_stream(tmp_path, monkeypatch):
    bids, out, work = tmp_path / "bids", tmp_path / "out", tmp_path / "work"
    demo.make_dataset(bids, n_volumes=40)
    bold = next(bids.rglob("sub-01_task-faces_run-1_*desc-preproc_bold.nii.gz"))
    reads = _record_reads(monkeypatch)
    _run(bids, out, work, "01")
    assert ("report" not in {node for _, node in reads}), reads
    assert (bold.name, "masking") in reads  # the one stream that reads the volumes
    monkeypatch.undo()
    data = np.load(next(out.rglob("sub-01_task-faces_run-1_*_reportdata.npz")))
    expected = io.mean_volume(bold).astype(np.float32)
    assert data["mean"].dtype == np.float32 and data["mean"].shape == nib.load(bold).shape[:3]
    np.testing.assert_array_equal(data["mean"], expected)
    np.testing.assert_array_equal(data["affine"], nib.load(bold).affine)
    masking_mean = np.load(next(work.rglob("masking/mean.npy")))
    assert masking_mean.dtype == np.float32
    np.testing.assert_array_equal(masking_mean, io.mean_volume(bold))


def test_grayordinate_runs_have_no_mean_image(tmp_path):
    from nipype.utils.filemanip import loadpkl

    bids, out, work = tmp_path / "bids", tmp_path / "out", tmp_path / "work"
    demo.make_dataset(bids, n_volumes=60, grayordinates=True)
    _run(bids, out, work, "03", "--space", "fsLR", "--den", "91k")
    result = loadpkl(next(work.rglob("masking/result_masking.pklz")))
    assert result.outputs.mean_image is None
    assert not list(work.rglob("masking/mean.npy"))
    data = np.load(next(out.rglob("sub-03_*_reportdata.npz")))
    assert "mean" not in data.files and "affine" not in data.files
