"""Trial-model option combinations that would silently give another model are refused with one line."""

import pytest

from bidsapp.cli.parser import UsageError, parse_args


def _base(tmp_path):
    return [str(tmp_path / "bids"), str(tmp_path / "out"), "participant"]


@pytest.mark.parametrize("extra, words", [
    (["--trial-ridge"], "--trial-ridge needs --trial-estimates lsa or optimized (got none)"),
    (["--trial-estimates", "lss", "--trial-ridge"], "--trial-ridge needs --trial-estimates lsa or optimized (got lss)"),
    (["--trial-denoise", "pca"], "--trial-denoise pca needs --trial-estimates optimized, or lsa with --trial-ridge"),
    (["--trial-estimates", "lss", "--trial-denoise", "pca"], "(got lss)"),
    (["--trial-estimates", "lsa", "--trial-denoise", "pca"], "(got lsa without --trial-ridge)"),
    (["--trial-estimates", "lss", "--trial-repeats", "stim"], "--trial-repeats stim is read only by"),
    (["--trial-estimates", "lsa", "--trial-repeats", "stim"], "with lsa it would do nothing"),
    (["--trial-estimates", "optimized", "--hrf", "glover"], "--hrf glover: the joined trial model"),
    (["--trial-estimates", "optimized", "--hrf", "fir"], "--hrf fir: the joined trial model"),
    (["--trial-estimates", "lsa", "--trial-ridge", "--hrf", "spm+derivative"], "use --hrf spm or --hrf library"),
])
def test_refused_combinations_name_the_value(tmp_path, extra, words):
    with pytest.raises(UsageError) as err:
        parse_args(_base(tmp_path) + extra)
    assert words in str(err.value)
    assert "\n" not in str(err.value)
    assert getattr(err.value, "code", 2) == 2


@pytest.mark.parametrize("extra", [
    ["--trial-estimates", "optimized"],
    ["--trial-estimates", "optimized", "--hrf", "library", "--trial-repeats", "stim"],
    ["--trial-estimates", "lsa", "--trial-ridge"],
    ["--trial-estimates", "lsa", "--trial-ridge", "--trial-denoise", "pca", "--trial-repeats", "stim"],
    ["--trial-estimates", "lss", "--hrf", "fir"],
    ["--trial-estimates", "lsa", "--hrf", "glover"],
])
def test_meaningful_combinations_are_accepted(tmp_path, extra):
    assert parse_args(_base(tmp_path) + extra).trial_estimates == extra[1]
