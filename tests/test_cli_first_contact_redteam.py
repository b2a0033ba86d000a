"""Found by trying to break issue 22's first minute from the outside: "did you mean" must name the option the
user meant when the spelling is a prefix of others (--tr), another tool's (fMRIPrep's --nthreads, -w), or an
option given after '--' (which argparse reports as unknown: "did you mean" then named the same option)."""

from __future__ import annotations

import pytest

from bidsapp.cli.run import main


@pytest.mark.parametrize("given, answer", [
    # nilearn's t_r typed as --tr is a prefix of three --trial-* options: argparse said only "ambiguous"
    (["--tr", "2"], "ambiguous option --tr; did you mean --t-r? "
                    "(it also starts --trial-window, --trial-edge, --trial-estimates, --trial-denoise, "
                    "--trial-ridge, --trial-repeats)"),
    (["--tr=2"], "ambiguous option --tr; did you mean --t-r? "
                 "(it also starts --trial-window, --trial-edge, --trial-estimates, --trial-denoise, "
                    "--trial-ridge, --trial-repeats)"),
    (["--TR", "2"], "unknown option --TR; did you mean --t-r?"),
    (["--tri", "2"], "ambiguous option --tri: it could start --trial-window, --trial-edge, --trial-estimates, "
                     "--trial-denoise, --trial-ridge, --trial-repeats (bidsapp -h shows the usage)"),
    # fMRIPrep's spellings
    (["--nthreads", "2"], "unknown option --nthreads; did you mean --nprocs?"),
    (["--n_cpus", "2"], "unknown option --n_cpus; did you mean --nprocs?"),
    (["-w", "/w"], "unknown option -w; did you mean --work-dir?"),
    (["--mem_mb", "4000"], "unknown option --mem_mb; did you mean --mem-gb?"),
    # after "--" nothing is an option: say so instead of "unknown option --denoise; did you mean --denoise?"
    (["--", "--denoise", "none"], "--denoise after '--': '--' ends the options, so what follows it is not read "
                                  "as an option; give the options before '--' (or leave '--' out)"),
    (["--participant-label", "01", "--"],
     "'--' at the end of the command line: it ends the options and nothing follows it; leave it out"),
    (["--participant-label", "01", "--", "extra"],
     "unexpected argument(s) extra after '--': bidsapp takes bids_dir output_dir analysis_level, then options "
     "(bidsapp -h shows the usage)"),
])
def test_did_you_mean_names_the_option_meant(tmp_path, capsys, given, answer):
    code = main([str(tmp_path / "bids"), str(tmp_path / "out"), "participant", *given])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err == f"bidsapp: error: {answer}\n"  # one line, no usage
    assert not (tmp_path / "out").exists()


def test_options_before_the_positionals_after_dash_dash(tmp_path, capsys):
    """The one spelling where an option after "--" is meant: "--" ends the option's list before bids_dir."""
    code = main(["--participant-label", "01", "--", str(tmp_path / "bids"), str(tmp_path / "out"), "participant"])
    err = capsys.readouterr().err
    assert code == 66 and "bids_dir not found" in err, err  # parsed; then the missing bids_dir is named


def test_a_list_option_before_the_positionals_is_named(tmp_path, capsys):
    """`bidsapp --participant-label 01 bids out participant`: the list took every word after it, and argparse
    said only that bids_dir, output_dir and analysis_level are missing."""
    code = main(["--participant-label", "01", str(tmp_path / "bids"), str(tmp_path / "out"), "participant"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "--participant-label took the words after it as its values" in err
    assert "give bids_dir output_dir analysis_level first, or end the list with '--'" in err
    # a later option ends the list: then the plain message
    assert main(["--run", "1", "--denoise", "simple", str(tmp_path / "bids"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "required: analysis_level" in err and "took the words" not in err, err


def test_missing_confound_column_speaks_the_command_lines_words(tmp_path, capsys):
    """The core's advice named Python parameters (motion='basic', columns=...) to a command-line user."""
    from bidsapp.demo import make_dataset

    bids = tmp_path / "bids"
    make_dataset(bids, n_volumes=40)
    code = main([str(bids), str(tmp_path / "out"), "participant", "--participant-label", "01", "--run", "1",
                 "--confounds", "no_such_column"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    assert "no_such_column" in err and "(e.g. --motion basic)" in err and "(--confounds COL ...)" in err, err
    assert "motion='basic'" not in err and "columns=..." not in err, err


def test_config_key_misspelled_is_answered_with_the_closest(tmp_path, capsys):
    config = tmp_path / "settings.json"
    config.write_text('{"participant_labl": "01", "lowpass": 0.1, "zzz": 1}')
    code = main([str(tmp_path / "bids"), str(tmp_path / "out"), "participant", "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert ("unknown setting(s) ['lowpass', 'participant_labl', 'zzz'] (did you mean 'low_pass' for 'lowpass', "
            "'participant_label' for 'participant_labl'?)") in err, err


def test_bids_dir_that_is_a_file_is_named_as_such(tmp_path, capsys):
    bids = tmp_path / "participants.tsv"
    bids.write_text("participant_id\nsub-01\n")
    code = main([str(bids), str(tmp_path / "out"), "participant"])
    err = capsys.readouterr().err
    assert code == 66 and f"{bids}: bids_dir is a file, not a folder" in err, err
    assert not (tmp_path / "out").exists()
