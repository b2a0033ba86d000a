"""``kill -9`` while the sink moves the work folder's arrays into the outputs (the file renamed to its temporary
output name, or already installed under its name) leaves no output set that looks complete: the run has no
sidecar, every sidecar left is true, and the next invocation, even one resuming from the killed invocation's work
folder (``--work-dir``), recomputes the run, gives the reference outputs and clears the temporaries."""

from __future__ import annotations

import pytest

from tests.reliability.helpers import STEM, SUB1, _cli, _sha, _temporaries, assert_sidecars_true, kill_9_at_marker

#: runs bidsapp in this process (one run, --nprocs 1: nodes in-process), pausing at one moment of the sink
DRIVER = '''
import sys, time
from pathlib import Path
from bidsapp.outputs import transaction

marker, moment = Path(sys.argv[1]), sys.argv[2]

def pause():
    marker.write_text("here")
    time.sleep(120)

if moment == "moved":  # cleaned.npy renamed to its temporary output name, not yet installed
    real_carried = transaction.carried_digest
    def carried(*a):
        pause()
        return real_carried(*a)
    transaction.carried_digest = carried
else:  # the array installed under its name; the next file (features.tsv) not yet
    real_install = transaction.RunWriter.install
    def install(self, src, path, **kw):
        if str(src).endswith("features.tsv"):
            pause()
        return real_install(self, src, path, **kw)
    transaction.RunWriter.install = install

from bidsapp.cli.run import main
sys.exit(main(sys.argv[3:]))
'''


@pytest.mark.parametrize("moment", ["moved", "installed"])
def test_kill_9_in_the_middle_of_the_sink(data, out, tmp_path, moment):
    bids, ref = data
    killed = kill_9_at_marker(DRIVER, tmp_path, moment, bids, out, "participant", "--participant-label", "01", "--run",
                              "1", "--nprocs", "1", "--high-pass", "0.01", "--replace-outputs")
    folder = out / SUB1
    assert not (folder / f"{STEM}_timeseries.json").exists()  # removed before any of its files changed
    (node,) = killed.glob("bidsapp_wf/*run1*/cleaning")
    assert not (node / "cleaned.npy").exists()  # moved, not copied
    if moment == "moved":
        (moved,) = [p for p in _temporaries(out) if p.name.startswith(f".{STEM}_timeseries.")]
        assert moved.suffix == ".npy" and moved.stat().st_nlink == 1
    else:  # the new array is in place, and nothing lists it
        assert _sha(folder / f"{STEM}_timeseries.npy") != _sha(ref / SUB1 / f"{STEM}_timeseries.npy")
    assert assert_sidecars_true(out) == 0  # --replace-outputs removed run-2's too (made with other settings)
    # resumed from the killed invocation's folder: nipype recomputes the node whose array was moved out of it
    done = _cli(bids, out, "participant", "--participant-label", "01", "--replace-outputs", "--work-dir", killed)
    assert done.returncode == 0, done.stderr
    assert "compute  sub-01_task-faces_run-1: no complete previous outputs" in done.stdout
    assert assert_sidecars_true(out) == 2 and _temporaries(out) == []
    for path in sorted((ref / SUB1).iterdir()):
        if not path.name.endswith("_timeseries.json"):
            assert _sha(folder / path.name) == _sha(path), path.name
