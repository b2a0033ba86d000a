"""Config files go through the command-line parser; the command line wins in every spelling."""

from __future__ import annotations

import json

import pytest

from bidsapp.cli.run import main


@pytest.mark.parametrize("config, key, expected", [
    ({"output_format": "tsv.gz"}, "output_format", ("tsv.gz",)),
    ({"participant_label": "01"}, "participant_label", ("01",)),
    ({"task": "faces"}, "task", ("faces",)),
    ({"confounds": ["trans_x", "rot_z"]}, "confounds", ("trans_x", "rot_z")),
    ({"low_pass": "0.08"}, "low_pass", 0.08),
    ({"detrend": False}, "detrend", False),
    ({"demean": False}, "demean", False),
    ({"no_demean": True}, "demean", False),  # the option's own name, --no-demean, with underscores
    ({"no_detrend": True}, "detrend", False),
    ({"no_standardize_confounds": True}, "standardize_confounds", False),
    ({"no_detrend": False}, "detrend", True),
    ({"trial_window": [-4, 20]}, "trial_window", (-4.0, 20.0)),
])
def test_config_values_are_typed_like_the_command_line(data, tmp_path, config, key, expected):
    """A config file goes through the command-line parser."""
    from bidsapp.cli.parser import parse_args

    bids, _ = data
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(config))
    assert getattr(parse_args([str(bids), str(tmp_path / "o"), "participant", "--config", str(cfg)]), key) == expected


@pytest.mark.parametrize("config, words", [
    ({"nprocs": "two"}, ["'nprocs'", '"two"', "invalid int"]),
    ({"trial_window": 5}, ["'trial_window'", "expected 2"]),
    ({"mask_strategy": "x"}, ["'mask_strategy'", "choose from", "epi"]),
    ({"resample_mask": "yes"}, ["'resample_mask'", "true or false"]),
    ({"nprocs": 0}, ["'nprocs'", "> 0"]),
    ({"low_pass": [0.1, 0.2]}, ["'low_pass'", "single value"]),
    ({"bids_dir": "/x"}, ["unknown setting", "bids_dir"]),
    ({"no_demean": "yes"}, ["'no_demean'", "true or false"]),
    ({"no_demean": True, "demean": True}, ["'no_demean' and 'demean' are one setting given twice"]),
    ({"config": "other.json"}, ["setting 'config' names a config file inside a config file"]),
])
def test_bad_config_values_exit_2_naming_key_value_and_allowed(data, tmp_path, capsys, config, words):
    """A bad value is exit 2 naming the key, the value and what is allowed."""
    bids, _ = data
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(config))
    assert main([str(bids), str(tmp_path / "o"), "participant", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(cfg) in err and all(w in err for w in words), err


@pytest.mark.parametrize("spelling", [["--denoise=simple"], ["--denoise", "simple"], ["--deno", "simple"],
                                      ["--deno=simple"]])
def test_command_line_wins_in_every_spelling(data, tmp_path, spelling):
    """Config {"denoise": "scrubbing"} loses to the command line however it is spelled."""
    from bidsapp.cli.parser import parse_args

    bids, _ = data
    cfg = tmp_path / "c.toml"
    cfg.write_text('denoise = "scrubbing"\nlow_pass = 0.1\n')
    s = parse_args([str(bids), str(tmp_path / "o"), "participant", "--config", str(cfg), *spelling])
    assert s.denoise == "simple" and s.low_pass == 0.1


def test_plugin_args_object_in_a_config_file(data, tmp_path):
    from bidsapp.cli.parser import parse_args

    bids, _ = data
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"plugin_args": {"n_procs": 1}}))
    s = parse_args([str(bids), str(tmp_path / "o"), "participant", "--config", str(cfg)])
    assert json.loads(s.plugin_args) == {"n_procs": 1}


@pytest.mark.parametrize("words", [["--high-pass", "-0.01"], ["--low-pass", "inf"], ["--high-pass", "nan"],
                                   ["--config", "NAN"]])
def test_bad_cut_offs_are_refused_by_the_parser(data, tmp_path, capsys, words):
    bids, _ = data
    if words[-1] == "NAN":
        cfg = tmp_path / "nan.json"
        cfg.write_text('{"high_pass": NaN}')
        words = ["--config", str(cfg)]
    assert main([str(bids), str(tmp_path / "o"), "participant", *words]) == 2
    err = capsys.readouterr().err
    assert "must be" in err and not (tmp_path / "o").exists()
    if words[0] == "--config":
        assert str(cfg) in err and "'high_pass'" in err
