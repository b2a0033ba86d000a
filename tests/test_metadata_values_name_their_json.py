"""A StartTime, SliceTiming or RepetitionTime that is not a number of seconds (``"n/a"``, ``"2 s"``) is one line
naming the JSON file the value came from, the value and the fix (it was Python's ``could not convert string to
float: 'n/a'``, naming no file), with nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bidsapp.cli.plan import start_time_of
from bidsapp.cli.run import main

BOLD = "sub-01_task-faces_run-1_space-MNI152NLin2009cAsym_desc-preproc_bold"


def _set(path: Path, **values) -> None:
    meta = json.loads(path.read_text())
    meta.update(values)
    path.write_text(json.dumps(meta))


@pytest.fixture
def bids(demo, tmp_path) -> Path:
    root = tmp_path / "bids"
    shutil.copytree(demo[0], root)
    return root


def _refused(bids: Path, out: Path, capsys) -> str:
    code = main([str(bids), str(out), "participant", "--participant-label", "01", "--run", "1", "--nprocs", "1",
                 "--work-dir", str(out.parent / "work")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "could not convert" not in err, err
    assert not out.exists()
    return err


def test_start_time_not_a_number_names_fmriprep_json(bids, tmp_path, capsys):
    own = bids / "derivatives/fmriprep/sub-01/func" / f"{BOLD}.json"
    _set(own, StartTime="n/a")
    err = _refused(bids, tmp_path / "out", capsys)
    assert err.startswith(f"bidsapp: error: {own}: StartTime is \"n/a\", not a number of seconds (the StartTime of "
                          f"{BOLD}.nii.gz); write it as a number of seconds")


def test_repetition_time_not_a_number_names_the_json_it_came_from(bids, tmp_path, capsys):
    own = bids / "derivatives/fmriprep/sub-01/func" / f"{BOLD}.json"
    raw = bids / "sub-01/func/sub-01_task-faces_run-1_bold.json"
    meta = json.loads(own.read_text())
    meta.pop("RepetitionTime")
    own.write_text(json.dumps(meta))
    _set(raw, RepetitionTime="2 s")
    err = _refused(bids, tmp_path / "out", capsys)
    assert err.startswith(f"bidsapp: error: {raw}: RepetitionTime is \"2 s\", not a positive number of seconds")
    assert "or pass --t-r SECONDS" in err


def test_slice_timing_not_numbers_names_the_raw_json(bids, tmp_path, capsys):
    own = bids / "derivatives/fmriprep/sub-01/func" / f"{BOLD}.json"
    meta = json.loads(own.read_text())
    meta.pop("StartTime")
    own.write_text(json.dumps({**meta, "SliceTimingCorrected": False}))
    raw = bids / "sub-01/func/sub-01_task-faces_run-1_bold.json"
    _set(raw, SliceTiming=[0, "n/a", 1.0])
    err = _refused(bids, tmp_path / "out", capsys)
    assert err.startswith(f"bidsapp: error: {raw}: SliceTiming is \"n/a\", not a number of seconds")


@pytest.mark.parametrize("meta", [{"StartTime": "n/a"}, {"StartTime": float("nan")}, {"StartTime": True},
                                  {"StartTime": [1.0]}, {"SliceTiming": "0 1 2"}])
def test_start_time_of_refuses_what_is_not_seconds(meta):
    with pytest.raises(ValueError, match=r"(StartTime|SliceTiming) is .*, not a (list of times|number) in seconds|"
                                         r"not a number of seconds"):
        start_time_of(meta)


def test_start_time_of_takes_numbers_and_numeric_text():
    assert start_time_of({"StartTime": "0.5"}) == (0.5, "StartTime")
    assert start_time_of({"SliceTiming": [0, 1.5, 0.5]}) == (0.75, "middle of SliceTiming")
