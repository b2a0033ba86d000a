"""A run refused before it starts (exit 2 with one line, or 66 for a missing input) leaves nothing behind: no new
output folder (not even an empty one, nor its parents), and an existing output folder exactly as it was."""

from __future__ import annotations

import shutil

import pytest

from bidsapp.cli.run import main

#: pre-run refusals: the arguments after ``participant`` and the exit code
REFUSALS = {
    "connectivity on voxels": (["--participant-label", "01", "--connectivity", "correlation"], 2),
    "connectivity on grayordinates": (["--participant-label", "03", "--space", "fsLR", "--den", "91k",
                                       "--connectivity", "correlation"], 2),
    "a volume atlas on grayordinates": (["--participant-label", "03", "--space", "fsLR", "--den", "91k",
                                         "--atlas", "{atlas}"], 2),
    "--mem-gb too small": (["--participant-label", "01", "--mem-gb", "0.1"], 2),
    "--fisher-z without a correlation": (["--participant-label", "01", "--fisher-z"], 2),
    "a missing --spheres file": (["--participant-label", "01", "--spheres", "{missing}"], 66),
    "a name made with other settings": (["--participant-label", "01", "--trial-estimates", "lsa"], 2),
}


def _listing(folder):
    """Every file and folder under ``folder`` with its size and modification time (folders: their names only,
    as the write probe touches their modification time)."""
    return sorted((str(p.relative_to(folder)), *((p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else ()))
                  for p in folder.rglob("*"))


def _args(demo_outputs, tmp_path, name):
    args, code = REFUSALS[name]
    base = demo_outputs / "bidsapp-demo-output"
    args = [a.format(atlas=base / "atlas-demo_dseg.nii.gz", missing=tmp_path / "seeds.tsv") for a in args]
    return [str(base / "bids")], args, code


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_a_refusal_leaves_no_new_folder(demo_outputs, tmp_path, capsys, name):
    bids, args, code = _args(demo_outputs, tmp_path, name)
    if name == "a name made with other settings":
        pytest.skip("needs existing outputs of that name: tested on the existing folder")
    out = tmp_path / "new" / "deeper" / "out"
    assert main([*bids, str(out), "participant", "--work-dir", str(tmp_path / "work"), *args]) == code
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "the refused run left folders behind"


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_a_refusal_leaves_an_existing_folder_as_it_was(demo_outputs, tmp_path, capsys, name):
    bids, args, code = _args(demo_outputs, tmp_path, name)
    out = tmp_path / "out"
    shutil.copytree(demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp", out)
    before = _listing(out)
    assert main([*bids, str(out), "participant", "--work-dir", str(tmp_path / "work"), *args]) == code
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert _listing(out) == before
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("name", sorted(set(REFUSALS) - {"a name made with other settings"}))
@pytest.mark.parametrize("joined", [False, True], ids=["per-run", "joined-model"])
def test_a_refusal_leaves_an_existing_empty_folder_empty(demo_outputs, tmp_path, capsys, name, joined):
    """An empty folder made for the outputs stays empty: the lock files this invocation made (its presence, a
    joined trial model's) and their folders go with the refusal when no other invocation is there."""
    bids, args, code = _args(demo_outputs, tmp_path, name)
    out = tmp_path / "out"
    out.mkdir()
    joined_args = ["--trial-estimates", "optimized"] if joined else []
    assert main([*bids, str(out), "participant", *args, *joined_args]) == code
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert list(out.iterdir()) == []
