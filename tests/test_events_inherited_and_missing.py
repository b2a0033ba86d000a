"""Events files found by the BIDS inheritance principle (a file at the dataset's top or a participant's folder, no
run entity) give the runs their trial outputs, recorded like a run's own file; a run that no events file applies to
while trial outputs are asked for is one warning line naming its BOLD file and where the events were looked for."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bidsapp.cli.run import main

STEM = "sub-01_task-faces_run-1_space-MNI152NLin2009cAsym_desc-simple"
BOLD = "sub-01_task-faces_run-1_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"


@pytest.fixture
def bids(demo, tmp_path) -> Path:
    root = tmp_path / "bids"
    shutil.copytree(demo[0], root)
    return root


def _run(bids: Path, out: Path, *options: str) -> int:
    return main([str(bids), str(out), "participant", "--participant-label", "01", "--run", "1", "--nprocs", "1",
                 "--work-dir", str(out.parent / "work"), *options])


@pytest.mark.parametrize("inherited", ["task-faces_events.tsv", "sub-01/func/sub-01_task-faces_events.tsv"])
def test_inherited_events_give_trial_outputs_and_a_change_recomputes(bids, tmp_path, capsys, recwarn, inherited):
    func = bids / "sub-01" / "func"
    (func / "sub-01_task-faces_run-1_events.tsv").rename(bids / inherited)
    (func / "sub-01_task-faces_run-2_events.tsv").unlink()
    out = tmp_path / "out"
    assert _run(bids, out, "--trial-estimates", "lss") == 0
    func_out = out / "sub-01" / "func"
    assert (func_out / f"{STEM}_trials.tsv").exists() and (func_out / f"{STEM}_betas.tsv").exists()
    sidecar = json.loads((func_out / f"{STEM}_timeseries.json").read_text())
    assert sidecar["Trials"]["EventsFile"] == f"bids:raw:{inherited}"
    assert [s["URI"] for s in sidecar["Sources"] if s["Role"] == "events"] == [f"bids:raw:{inherited}"]
    assert not [str(w.message) for w in recwarn if "no events file" in str(w.message)]
    assert _run(bids, out, "--trial-estimates", "lss") == 0
    assert "skipped  sub-01_task-faces_run-1" in capsys.readouterr().out
    (bids / inherited).write_text((bids / inherited).read_text().replace("\n", "\n0.5\t1\tface\t0.5\n", 1))
    assert _run(bids, out, "--trial-estimates", "lss") == 0
    assert f"compute  sub-01_task-faces_run-1: input 'events' (bids:raw:{inherited}) changed" in capsys.readouterr().out


@pytest.mark.parametrize("options", [["--trial-estimates", "lss"], ["--trial-window", "0", "12"], ["--hrf-lag", "5"]])
def test_a_run_without_events_warns_once_when_trial_outputs_are_asked_for(bids, tmp_path, recwarn, options):
    for tsv in (bids / "sub-01" / "func").glob("*_events.tsv"):
        tsv.unlink()
    assert _run(bids, tmp_path / "out", *options) == 0
    lines = [str(w.message) for w in recwarn if "no events file" in str(w.message)]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{BOLD}: no events file applies to this run (looked for "
                               f"*_events.tsv in sub-01/func/, sub-01/ and the top folder of {bids} and of "
                               f"{bids / 'derivatives' / 'fmriprep'})")
    assert options[0] in lines[0]
    assert not list((tmp_path / "out").rglob("*_trials.tsv"))


def test_a_run_without_events_and_no_trial_option_says_nothing(bids, tmp_path, recwarn):
    for tsv in (bids / "sub-01" / "func").glob("*_events.tsv"):
        tsv.unlink()
    assert _run(bids, tmp_path / "out") == 0
    assert not [str(w.message) for w in recwarn if "no events file" in str(w.message)]


@pytest.mark.parametrize("estimates", ["lss", "optimized"])
def test_an_events_file_with_only_its_header_and_trial_estimates_is_one_line(bids, tmp_path, capsys, estimates):
    """No event to estimate: one line naming the events file and the fix, exit 2, no output folder (it crashed in
    the segmentation node, naming the BOLD file)."""
    events = bids / "sub-01" / "func" / "sub-01_task-faces_run-1_events.tsv"
    events.write_text("onset\tduration\ttrial_type\n")
    out = tmp_path / "out"
    assert _run(bids, out, "--trial-estimates", estimates) == 2
    err = capsys.readouterr().err
    assert f"{events}: no events (the file has only its header), so --trial-estimates {estimates} has no trial" in err
    assert not out.exists()
    assert _run(bids, out) == 0  # without trial estimates the run is processed (its rows have no trial)
