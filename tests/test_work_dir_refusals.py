"""A --work-dir that would put nipype's cache among the outputs, or whose workflow folder bidsapp did not make
(a symbolic link: emptying another code's cache would follow it; a file), is refused before anything is
written: one line, exit 2, no output folder."""

from __future__ import annotations

import os

import pytest

from bidsapp.cli.run import main


def _call(demo, out, work, capsys):
    code = main([str(demo / "derivatives" / "fmriprep"), str(out), "participant", "--participant-label", "01",
                 "--work-dir", str(work), "--plugin", "Linear"])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("where", ["output", "inside-output", "symlink", "file"])
def test_work_dir_refused_before_anything_is_written(demo, tmp_path, capsys, where):
    demo, out = demo[0], tmp_path / "out"
    work = {"output": out, "inside-output": out / "sub-01" / "func"}.get(where, tmp_path / "work")
    if where == "symlink":
        (tmp_path / "elsewhere").mkdir()
        work.mkdir()
        os.symlink(tmp_path / "elsewhere", work / "bidsapp_wf")
    elif where == "file":
        work.mkdir()
        (work / "bidsapp_wf").write_text("not a folder")
    code, lines = _call(demo, out, work, capsys)
    assert code == 2 and len(lines) == 1, lines
    expected = {"output": "is the output folder", "inside-output": "inside the output folder",
                "symlink": "is a symbolic link", "file": "is a file"}[where]
    assert expected in lines[0] and "--work-dir" in lines[0]
    assert not out.exists()
    if where == "symlink":
        assert (tmp_path / "elsewhere").is_dir()  # never followed
