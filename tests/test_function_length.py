"""No function of the package is over 60 lines (its docstring not counted): a longer one is split into named
steps. The options table (``bidsapp/options.py``, one row per option) may be as long as it needs: it is
module-level data, not a function, so the walk never counts it; no function is allowed more."""

from __future__ import annotations

import ast
from pathlib import Path

import bidsapp

MAX_LINES = 60
PACKAGE = Path(bidsapp.__file__).parent
#: functions allowed to be longer, with why (path relative to the package, function name): none
ALLOWED: dict[tuple[str, str], str] = {}


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from ``def`` to the function's end, without its docstring (a long docstring is documentation)."""
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines -= first.end_lineno - first.lineno + 1
    return lines


def long_functions(root: Path) -> dict[tuple[str, str], int]:
    """(module path, function name) -> lines, for every function (methods and nested ones too) over the limit."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body_lines(node) > MAX_LINES:
                out[(path.relative_to(root).as_posix(), node.name)] = _body_lines(node)
    return out


def test_no_function_over_60_lines():
    found = {k: n for k, n in long_functions(PACKAGE).items() if k not in ALLOWED}
    assert not found, ("functions over 60 lines (split them into named steps): "
                       + ", ".join(f"{path}::{name} ({n} lines)" for (path, name), n in sorted(found.items())))


def test_the_check_finds_a_long_function(tmp_path):
    """The walk sees methods and nested functions, and leaves the docstring out of the count."""
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    doc = '    """' + "\n" * 30 + '    """\n'
    (tmp_path / "mod.py").write_text(f"def short():\n{doc}{body[: body.rindex(chr(10))]}\n\n"
                                     f"class A:\n    def long(self):\n    {body.replace(chr(10), chr(10) + '    ')}\n"
                                     f"        return 0\n")
    assert long_functions(tmp_path) == {("mod.py", "long"): MAX_LINES + 2}
