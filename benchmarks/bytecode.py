"""bidsapp's modules compiled to bytecode before a benchmark runs it, as ``pip install`` leaves an installed package.

An editable install (``pip install -e .``) has no ``__pycache__`` until a module is first imported, and an
environment with ``PYTHONDONTWRITEBYTECODE=1`` (the development machine's; the container sets it too, after pip
compiled the installed wheel) never writes one: each invocation then compiles every bidsapp module from source,
about 0.05-0.1 s that no installed copy pays. nilearn, installed from its wheel, has its bytecode.
"""

from __future__ import annotations

import compileall
from pathlib import Path


def compile_bidsapp() -> None:
    """Write the bytecode of every bidsapp module next to its source (``__pycache__``, ignored by git)."""
    import bidsapp

    compileall.compile_dir(str(Path(bidsapp.__file__).parent), quiet=1)
