"""A new user's first minute (issue 22): the BIDS Apps spellings work, a misspelled option is answered in one
line with the closest known option, a missing bids_dir is named as such."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bidsapp.cli.parser import aliases, build_parser, parse_args
from bidsapp.cli.run import main


def test_bids_apps_spellings_are_aliases(tmp_path):
    base = [str(tmp_path / "bids"), str(tmp_path / "out"), "participant"]
    s = parse_args(base + ["--participant_label", "01", "sub-02", "--session_label", "1"])
    assert s.participant_label == ("01", "sub-02") and s.session_label == ("1",)
    assert parse_args(base + ["--participant_label=03"]).participant_label == ("03",)
    # after "--" nothing is an option, so nothing is rewritten (here: a folder named --participant_label)
    s = parse_args(["--", str(tmp_path / "--participant_label"), *base[1:]])
    assert s.bids_dir.name == "--participant_label" and s.participant_label == ()


def test_aliases_are_hidden_from_help_and_boutiques():
    from bidsapp.cli.boutiques import descriptor

    page = build_parser().format_help()
    flags = json.dumps(descriptor())
    for alias, option in aliases().items():
        assert alias not in page and option in page
        assert alias not in flags and option in flags
    on_disk = json.loads((Path(__file__).parents[1] / "boutiques.json").read_text())
    assert on_disk == json.loads(json.dumps(descriptor()))


@pytest.mark.parametrize("given, answer", [
    ("--participant-lable", "unknown option --participant-lable; did you mean --participant-label?"),
    ("--partcipant_label", "unknown option --partcipant_label; did you mean --participant-label?"),
    ("--highpass", "unknown option --highpass; did you mean --high-pass?"),
    ("--work_dir=/w", "unknown option --work_dir; did you mean --work-dir?"),
    ("--Denoise", "unknown option --Denoise; did you mean --denoise?"),
    ("--foo", "unknown option --foo; bidsapp -h lists every option"),
])
def test_unknown_option_is_one_line_with_the_closest(tmp_path, capsys, given, answer):
    code = main([str(tmp_path / "bids"), str(tmp_path / "out"), "participant", given, "x"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err == f"bidsapp: error: {answer}\n"  # one line, no usage


def test_other_parser_errors_are_one_line_and_usage_only_with_h(tmp_path, capsys):
    base = [str(tmp_path / "bids"), str(tmp_path / "out"), "participant"]
    assert main(base + ["--denoise", "bad"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "usage:" not in err
    assert err.startswith("bidsapp: error: argument --denoise: invalid choice: 'bad'")
    assert err.endswith("(bidsapp -h shows the usage)\n")
    assert main(base + ["extra"]) == 2
    assert capsys.readouterr().err == ("bidsapp: error: unexpected argument(s) extra: bidsapp takes bids_dir "
                                       "output_dir analysis_level, then options (bidsapp -h shows the usage)\n")
    assert main([str(tmp_path / "bids")]) == 2
    err = capsys.readouterr().err
    assert err == ("bidsapp: error: the following arguments are required: output_dir, analysis_level "
                   "(bidsapp -h shows the usage)\n")
    assert main(["-h"]) == 0
    assert capsys.readouterr().out.startswith("usage: bidsapp")
    assert main(base + ["--foo", "--bar"]) == 2
    assert capsys.readouterr().err == ("bidsapp: error: unknown option --foo (and 1 more); bidsapp -h lists every "
                                       "option\n")


def test_missing_bids_dir_names_bids_dir(tmp_path, capsys):
    missing = tmp_path / "bdis"
    assert main([str(missing), str(tmp_path / "out"), "participant"]) == 66
    assert capsys.readouterr().err == (f"bidsapp: error: {missing}: bids_dir not found (the first argument: the "
                                       "BIDS dataset, or the fMRIPrep folder itself); check the path.\n")
    assert not (tmp_path / "out").exists()


def test_console_script_speaks_one_line(tmp_path):
    """The installed entry point, as a user types it."""
    done = subprocess.run([sys.executable, "-m", "bidsapp.cli.run", str(tmp_path), str(tmp_path / "o"),
                           "participant", "--participant-lable", "01"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "bidsapp: error: unknown option --participant-lable; did you mean --participant-label?\n"


@pytest.mark.parametrize("argv, expected", [
    (["--participant-label", "01", "--participant-label", "02"], ("01", "02")),
    (["--participant_label", "01", "--participant-label", "sub-02", "03"], ("01", "02", "03")),
    (["--participant-label", "01"], ("01",)),
])
def test_a_list_option_given_twice_keeps_every_value(tmp_path, argv, expected):
    """Repeating a list option (or mixing its spellings) must not silently drop the earlier values."""
    bids = tmp_path / "bids"
    bids.mkdir()
    s = parse_args([str(bids), str(tmp_path / "out"), "participant", *argv, "--nprocs", "1", "--mem-gb", "1"])
    assert tuple(label.removeprefix("sub-") for label in s.participant_label) == expected


def test_a_repeated_list_option_replaces_its_default_once(tmp_path):
    bids = tmp_path / "bids"
    bids.mkdir()
    s = parse_args([str(bids), str(tmp_path / "out"), "participant", "--output-format", "tsv.gz",
                    "--output-format", "nii.gz", "--nprocs", "1", "--mem-gb", "1"])
    assert s.output_format == ("tsv.gz", "nii.gz")  # the default npy is not kept
