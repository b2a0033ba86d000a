"""Sphinx configuration of the bidsapp documentation (MyST Markdown, numpydoc, furo)."""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).parent
sys.path.insert(0, str(DOCS / "_ext"))

from bidsapp import __version__  # noqa: E402

project = "bidsapp"
author = "bidsapp developers"
copyright = "2026, bidsapp developers"  # noqa: A001 - Sphinx's name
version = release = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "numpydoc", "bidsapp_docs"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "_generated", ".venv"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
suppress_warnings = ["myst.header"]

html_theme = "furo"
html_title = f"bidsapp {release}"
html_static_path: list[str] = []

# autodoc + numpydoc: the documented types are shown as written (never cross-referenced: no network at build
# time, so no intersphinx inventories of numpy, pandas or nibabel)
autodoc_typehints = "none"
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()
nitpicky = True
# references in docstrings to what is not part of the public surface documented here
nitpick_ignore = [
    ("py:mod", "bidsapp.execution.memory"),  # the memory model: internal
    ("py:attr", "image"),  # class attributes of ColumnSpace, listed in its Attributes section
    ("py:attr", "ColumnSpace.options"),
    ("py:attr", "CleaningOperator.matrix"),
    ("py:attr", "CleaningOperator.steps"),
]
