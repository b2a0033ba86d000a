"""How bidsapp speaks: one line per warning (no imports, usable before anything heavy loads)."""

from __future__ import annotations

import warnings


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """One line per warning, said by bidsapp (not Python's two lines pointing into nipype)."""
    return f"bidsapp: warning: {message}\n"


def install_warning_format() -> None:
    """Print every warning as one ``bidsapp: warning: ...`` line (main process and workers)."""
    warnings.formatwarning = _format_warning
