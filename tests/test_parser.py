import json

import pytest

from bidsapp.cli.parser import UsageError, parse_args


def test_defaults_and_hash(demo, tmp_path):
    s = parse_args([str(demo[0]), str(tmp_path / "out"), "participant"])
    assert s.mask_strategy == "fmriprep" and s.denoise == "simple" and s.standardize == "zscore_sample"
    assert s.fmriprep_dir == (demo[0] / "derivatives" / "fmriprep").resolve()
    other = parse_args([str(demo[0]), str(tmp_path / "elsewhere"), "participant", "--nprocs", "1"])
    assert s.configuration_hash() == other.configuration_hash()  # paths and execution do not count
    assert parse_args([str(demo[0]), str(tmp_path / "o"), "participant", "--high-pass", "0.01"]
                      ).configuration_hash() != s.configuration_hash()


def test_config_json_and_toml(demo, tmp_path):
    js = tmp_path / "s.json"
    js.write_text(json.dumps({"denoise": "compcor", "low-pass": 0.08, "standardize": "psc"}))
    s = parse_args([str(demo[0]), str(tmp_path / "o"), "participant", "--config", str(js), "--standardize", "none"])
    assert s.denoise == "compcor" and s.low_pass == 0.08 and s.standardize is None  # command line wins
    toml = tmp_path / "s.toml"
    toml.write_text('denoise = "scrubbing"\nfd_threshold = 0.3\n')
    s = parse_args([str(demo[0]), str(tmp_path / "o"), "participant", "--config", str(toml)])
    assert s.denoise == "scrubbing" and s.fd_threshold == 0.3
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"lowpass": 1}))
    with pytest.raises(UsageError, match=r"unknown setting\(s\) \['lowpass'\]"):
        parse_args([str(demo[0]), str(tmp_path / "o"), "participant", "--config", str(bad)])


def test_atlas_name_and_labels(demo, tmp_path):
    atlas = tmp_path / "tpl-MNI_atlas-Schaefer100_dseg.nii.gz"
    atlas.write_bytes(b"")
    s = parse_args([str(demo[0]), str(tmp_path / "o"), "participant", "--atlas", str(atlas)])
    assert s.atlas_name == "Schaefer100"
    with pytest.raises(UsageError, match="--atlas-labels file not found"):
        parse_args([str(demo[0]), str(tmp_path / "o"), "participant", "--atlas", str(atlas),
                    "--atlas-labels", str(tmp_path / "missing.tsv")])


def test_boutiques_descriptor_is_current():
    from pathlib import Path

    from bidsapp.cli.boutiques import descriptor

    on_disk = json.loads((Path(__file__).parents[1] / "boutiques.json").read_text())
    # regenerate with: python -m bidsapp.cli.boutiques > boutiques.json
    assert on_disk == json.loads(json.dumps(descriptor()))
    flags = {i.get("command-line-flag") for i in on_disk["inputs"]}
    assert {"--mask-strategy", "--denoise", "--trial-estimates", "--no-detrend"} <= flags


def test_options_that_do_not_apply_are_not_hashed(tmp_path):
    """--fd-threshold with 'simple' (or --motion with explicit --confounds) changes no hash."""
    base = [str(tmp_path / "bids"), str(tmp_path / "out"), "participant"]
    ref = parse_args(base)
    assert parse_args(base + ["--fd-threshold", "0.3", "--compcor", "temporal"]).configuration_hash() == \
        ref.configuration_hash()
    assert "fd_threshold" not in ref.result_settings() and "motion" in ref.result_settings()
    scrub = parse_args(base + ["--denoise", "scrubbing", "--fd-threshold", "0.3"])
    assert scrub.result_settings()["fd_threshold"] == 0.3
    cols = base + ["--confounds", "csf", "trans_x"]
    assert parse_args(cols + ["--motion", "basic"]).configuration_hash() == parse_args(cols).configuration_hash()
    assert parse_args(base + ["--dummy-scans", "4"]).dummy_scans == 4
    assert parse_args(base + ["--dummy-scans", "4"]).configuration_hash() != ref.configuration_hash()


def test_help_documents_every_option_and_its_default_once():
    import argparse

    from bidsapp.cli.parser import EXIT_CODES, build_parser

    parser = build_parser()
    formatter = parser._get_formatter()
    options = [a for a in parser._actions
               if a.option_strings and not isinstance(a, argparse._HelpAction | argparse._VersionAction)]
    assert len(options) >= 40
    for action in options:
        assert action.help, f"{action.option_strings} has no help text"
        text = formatter._get_help_string(action) % {"default": action.default, "prog": "bidsapp"}
        assert text.count("default") == 1, f"{action.option_strings}: {text!r}"
    page = parser.format_help()
    for code, what in EXIT_CODES:
        assert f"{code:>3}  {what}" in page
    # options are grouped (as fMRIPrep's parser), none left in the generic group
    generic = next(g for g in parser._action_groups if g.title == "options")
    assert [a.dest for a in generic._group_actions] == ["help"]
    flat = " ".join(page.split())
    assert "(default: 0.0)" in flat and "(default: None)" not in flat
