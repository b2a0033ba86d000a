"""An output is a file of its own, never a hard link to the ``--work-dir`` cache: editing an output in place (a
memory map opened ``r+``, as analysis code does) changed the cache, and the next invocation sharing the work
folder installed the edited numbers, with matching checksums, into a new output folder; the documented repair
(a changed output is recomputed) put the edited numbers back and called them current."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bidsapp.cli.run import main


def _run(demo: Path, out: Path, work: Path) -> int:
    return main([str(demo / "derivatives" / "fmriprep"), str(out), "participant", "--participant-label", "01",
                 "--work-dir", str(work), "--plugin", "Linear"])


def _path(out: Path) -> Path:
    (path,) = sorted(out.glob("sub-01/func/*run-1*_timeseries.npy"))
    return path


def test_an_output_edited_in_place_reaches_neither_the_cache_nor_other_outputs(demo, tmp_path):
    demo, work = demo[0], tmp_path / "work"
    assert _run(demo, tmp_path / "o1", work) == 0
    clean = np.load(_path(tmp_path / "o1"))
    assert _path(tmp_path / "o1").stat().st_nlink == 1
    edited = np.load(_path(tmp_path / "o1"), mmap_mode="r+")
    edited[:, :10] = 0
    edited.flush()
    del edited
    assert _run(demo, tmp_path / "o2", work) == 0  # a new output folder, the same work folder
    np.testing.assert_array_equal(np.load(_path(tmp_path / "o2")), clean)
    assert _run(demo, tmp_path / "o1", work) == 0  # the edited output is recomputed, not restored from the edit
    np.testing.assert_array_equal(np.load(_path(tmp_path / "o1")), clean)
