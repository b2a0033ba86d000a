"""Without ``--work-dir`` the cleaning node cleans the masking node's array in that very file (renamed, not
copied): the masking node's file is gone and its array overwritten, so its cached result must never be reused.
``kill -9`` in the middle of the cleaning, then a resume from the killed invocation's work folder
(``--work-dir``), recomputes the masking node and gives the reference outputs; with ``--work-dir`` from the
start the masking node's array is never taken."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.helpers import STEM, SUB1, _cli, _sha, assert_sidecars_true, kill_9_at_marker

#: runs bidsapp in this process (one run, --nprocs 1: nodes in-process), pausing after the array was cleaned in
#: place (the QC after cleaning reads it)
DRIVER = '''
import sys, time
from pathlib import Path
from bidsapp.core import qc

marker = Path(sys.argv[1])
real = qc.qc_after

def paused(*a, **k):
    marker.write_text("here")
    time.sleep(120)
    return real(*a, **k)

qc.qc_after = paused
from bidsapp.cli.run import main
sys.exit(main(sys.argv[2:]))
'''

ARGS = ("participant", "--participant-label", "01", "--run", "1", "--nprocs", "1")


def _masking_node(work: Path) -> Path:
    (node,) = work.glob("bidsapp_wf/*run1*/masking")
    return node


def test_kill_9_after_the_array_was_cleaned_in_place_then_resume(data, tmp_path):
    bids, ref = data
    out = tmp_path / "out"
    killed = kill_9_at_marker(DRIVER, tmp_path, bids, out, *ARGS)
    masking = _masking_node(killed)
    assert not (masking / "timeseries.npy").exists()  # taken by the cleaning node
    assert (masking / "result_masking.pklz").exists() and not list(masking.glob("_0x*.json"))  # forgotten
    done = _cli(bids, out, *ARGS, "--work-dir", killed)
    assert done.returncode == 0, done.stderr
    assert assert_sidecars_true(out) == 1
    for path in sorted((ref / SUB1).iterdir()):
        if "run-1" in path.name and not path.name.endswith("_timeseries.json"):
            assert _sha(out / SUB1 / path.name) == _sha(path), path.name
    assert (out / SUB1 / f"{STEM}_timeseries.npy").exists()


@pytest.mark.parametrize("work_dir", [False, True])
def test_the_masking_array_is_taken_only_from_a_private_work_folder(data, tmp_path, work_dir):
    """A --work-dir keeps every node's files for later invocations (the masking node's array too); the private
    folder is removed after success either way. Both give the reference array."""
    bids, ref = data
    out, work = tmp_path / "out", tmp_path / "work"
    done = _cli(bids, out, *ARGS, *(["--work-dir", work] if work_dir else []))
    assert done.returncode == 0, done.stderr
    if work_dir:
        masking = _masking_node(work)
        assert (masking / "timeseries.npy").is_file() and list(masking.glob("_0x*.json"))
        again = _cli(bids, tmp_path / "out2", *ARGS, "--work-dir", work)  # resumed: the masking node reused
        assert again.returncode == 0, again.stderr
    name = f"{STEM}_timeseries.npy"
    assert _sha(out / SUB1 / name) == _sha(ref / SUB1 / name)
