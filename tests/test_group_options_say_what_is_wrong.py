"""``--exclude-fd-mean abc`` printed argparse's "invalid conv value: 'abc'" (the name of an inner function), and
``exclusion_reason`` named only the first exclusion rule that fired (a run above both thresholds read as above
the first only)."""

from __future__ import annotations

import numpy as np
import pytest

from bidsapp.core import denoising_benchmark as db


@pytest.mark.parametrize(("option", "words"), [("--exclude-fd-mean", "a number in mm or none"),
                                               ("--exclude-censored-fraction", "a fraction between 0 and 1 or none")])
def test_a_word_where_a_number_is_expected(tmp_path, capsys, option, words):
    from bidsapp.cli.run import main

    assert main([str(tmp_path), str(tmp_path / "out"), "group", option, "abc"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert option in err and "'abc'" in err and words in err and "conv" not in err


def test_none_and_numbers_still_parse(tmp_path):
    from bidsapp.options import fraction, none_or, positive

    conv = none_or(positive(float), "a number in mm")
    assert conv("none") is None and conv("0.55") == 0.55
    assert none_or(fraction, "a fraction")("0.8") == 0.8
    with pytest.raises(Exception, match="must be > 0"):  # argparse's ArgumentTypeError, message kept
        conv("-1")


@pytest.mark.parametrize("seed", range(6))
def test_every_rule_that_fired_is_named(seed):
    rng = np.random.default_rng(seed)
    fd = rng.uniform(0, 0.6, 200) * rng.uniform(0.5, 2.5)
    mean, frac = db.mean_fd(fd), db.high_motion_fraction(fd, 0.2)
    fd_max, frac_max = float(rng.uniform(0.1, 0.5)), float(rng.uniform(0.2, 0.9))
    reason = db.exclusion_reason(mean, frac, fd_mean_max=fd_max, censored_fraction_max=frac_max, fd_threshold=0.2)
    above_mean, above_frac = np.mean(fd) > fd_max, np.mean(fd > 0.2) > frac_max
    if not (above_mean or above_frac):
        assert reason is None
        return
    assert ("mean framewise displacement" in reason) == above_mean
    assert ("of volumes with framewise displacement > 0.2 mm" in reason) == above_frac


def test_both_rules_in_one_reason():
    reason = db.exclusion_reason(0.5, 0.9, fd_mean_max=0.25, censored_fraction_max=0.8, fd_threshold=0.2)
    assert reason == ("mean framewise displacement 0.500 mm > 0.25 mm; 90.0% of volumes with framewise "
                      "displacement > 0.2 mm, more than 80%")
