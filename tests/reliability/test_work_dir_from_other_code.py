"""A resumed ``--work-dir`` reuses only what this code computed. nipype reuses a node's cached result when its
inputs hash the same, whatever code filled the cache: after an upgrade, a work folder from the older version
handed its results (and its older set of node outputs) to the new one, which failed at the report node with
a FileNotFoundError on a result file (exit 1) or, worse, could write the old code's numbers. The work folder's
cache is now stamped with a fingerprint of the code and emptied when another code filled it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from bidsapp.cli.run import main
from bidsapp.execution.workdir import CODE_STAMP, WORKFLOW_FOLDER, drop_other_code_cache
from bidsapp.outputs.provenance import code_fingerprint


def _run(demo: Path, out: Path, work: Path) -> int:
    return main([str(demo / "derivatives" / "fmriprep"), str(out), "participant", "--participant-label", "01",
                 "--work-dir", str(work), "--plugin", "Linear"])


def _array(out: Path) -> np.ndarray:
    (path,) = sorted(out.glob("sub-01/func/*run-1*_timeseries.npy"))
    return np.load(path)


def test_a_cache_filled_by_other_code_is_never_reused(demo, tmp_path):
    demo = demo[0]
    work = tmp_path / "work"
    assert _run(demo, tmp_path / "out1", work) == 0
    first = _array(tmp_path / "out1")
    stamp = work / WORKFLOW_FOLDER / CODE_STAMP
    assert stamp.read_text().strip() == code_fingerprint()
    # what another version left: a different stamp and, in its cache, numbers this code would not compute
    stamp.write_text("another-version\n")
    (cleaned,) = (work / WORKFLOW_FOLDER).glob("*run1*/cleaning/cleaned.npy")
    other = np.load(cleaned) * 2 + 1
    cleaned.unlink()  # a new file, as another version would have written
    np.save(cleaned, other)
    assert _run(demo, tmp_path / "out2", work) == 0
    np.testing.assert_array_equal(_array(tmp_path / "out2"), first)
    assert stamp.read_text().strip() == code_fingerprint()


def test_the_fingerprint_follows_the_code(tmp_path):
    package = tmp_path / "bidsapp"
    shutil.copytree(Path(code_fingerprint.__code__.co_filename).resolve().parents[1], package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    before = code_fingerprint(package)
    assert code_fingerprint(package) == before  # stable
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "x.pyc").write_bytes(b"compiled")  # not code that is hashed
    assert code_fingerprint(package) == before
    core = package / "core" / "qc.py"
    core.write_text(core.read_text() + "\n# edited\n")
    assert code_fingerprint(package) != before


def test_a_cache_from_this_code_is_kept(tmp_path):
    work = tmp_path / "work"
    assert drop_other_code_cache(work, "abc") is False  # nothing to drop in a new folder
    (work / WORKFLOW_FOLDER / "node").mkdir()
    assert drop_other_code_cache(work, "abc") is False and (work / WORKFLOW_FOLDER / "node").is_dir()
    assert drop_other_code_cache(work, "def") is True and not (work / WORKFLOW_FOLDER / "node").exists()
    (work / WORKFLOW_FOLDER / "node").mkdir()
    (work / WORKFLOW_FOLDER / CODE_STAMP).unlink()  # a cache without a stamp: written before stamps existed
    assert drop_other_code_cache(work, "def") is True and not (work / WORKFLOW_FOLDER / "node").exists()


def test_outputs_of_other_code_are_recomputed(demo, tmp_path, capsys):
    """The output folder's reuse check compares the code too, not only the version string: an edited checkout
    (still "0.1.0") or other numpy / scipy versions recompute a run, so one folder never mixes two codes' runs."""
    demo, out = demo[0], tmp_path / "out"
    assert _run(demo, out, tmp_path / "work") == 0
    sidecars = sorted(out.glob("sub-01/func/*_timeseries.json"))
    assert all(json.loads(p.read_text())["CodeFingerprint"] == code_fingerprint() for p in sidecars)
    meta = json.loads(sidecars[0].read_text())
    meta["CodeFingerprint"] = "0" * 64  # what an edited checkout with the same version string recorded
    sidecars[0].write_text(json.dumps(meta))
    capsys.readouterr()
    assert _run(demo, out, tmp_path / "work") == 0
    log = capsys.readouterr().out
    assert "made by other code" in log and log.count("skipped") == len(sidecars) - 1
    assert json.loads(sidecars[0].read_text())["CodeFingerprint"] == code_fingerprint()
