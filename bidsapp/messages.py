"""How bidsapp speaks: one line per warning (no imports, usable before anything heavy loads)."""

from __future__ import annotations

import warnings

#: core functions speak of their parameters; a command-line user reads the options that set them
CLI_WORDS = {
    "(resample=True)": "(--resample-mask)",
    "detrend=False": "--no-detrend",
    "filter='cosine'": "--filter cosine",
    "low_pass=": "--low-pass ",
    "high_pass (": "--high-pass (",
    "low_pass (": "--low-pass (",
    "(e.g. motion='basic')": "(e.g. --motion basic)",
    "(columns=...)": "(--confounds COL ...)",
    "fd_threshold=": "--fd-threshold ",
    "std_dvars_threshold=": "--std-dvars-threshold ",
    "scrub=": "--scrub ",
    "dummy_scans=": "--dummy-scans ",
    "(fd_threshold, std_dvars_threshold)": "(--fd-threshold, --std-dvars-threshold)",
    "lower dummy_scans": "lower --dummy-scans",
    "a strategy without scrubbing": "a --denoise without scrubbing",
}


def cli_words(text: str) -> str:
    """A core message in the command line's words (``resample=True`` -> ``--resample-mask``)."""
    for core, cli in CLI_WORDS.items():
        text = text.replace(core, cli)
    return text


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """One line per warning, said by bidsapp (not Python's two lines pointing into nipype)."""
    return f"bidsapp: warning: {cli_words(str(message))}\n"


def install_warning_format() -> None:
    """Print every warning as one ``bidsapp: warning: ...`` line (main process and workers)."""
    warnings.formatwarning = _format_warning
