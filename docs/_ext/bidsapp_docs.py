"""Sphinx extension of the bidsapp documentation.

- At ``builder-inited``: the demo (``bidsapp-demo``) runs once into ``BIDSAPP_DOCS_DEMO`` (default
  ``docs/_build/demo``; reused when its outputs are there), and the generated pages (options, exit codes,
  outputs specification, workflow graph and nodes) are written to ``docs/_generated/``.
- The ``exec-python`` directive runs its code when the page is built, from the folder where the demo ran,
  in one namespace per page (blocks of a page run in order, as a reader would), and shows the code and what
  it printed. An exception is an error of the build (``-W`` fails it).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
import traceback
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.util import logging

sys.path.insert(0, str(Path(__file__).parent))

import generate  # noqa: E402

LOG = logging.getLogger(__name__)
DOCS = Path(__file__).parents[1]


def demo_folder() -> Path:
    """The folder where ``bidsapp-demo`` ran for this build (it holds ``bidsapp-demo-output/``)."""
    return Path(os.environ.get("BIDSAPP_DOCS_DEMO", DOCS / "_build" / "demo")).resolve()


def _run_demo(folder: Path) -> None:
    out = folder / "bidsapp-demo-output"
    if list((out / "derivatives-bidsapp").rglob("*_betas.npy")):
        return
    from bidsapp.demo import main

    folder.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    log = io.StringIO()
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        code = main([str(out), "--nprocs", "2"])
    (folder / "demo.log").write_text(log.getvalue())
    if code != 0:
        raise RuntimeError(f"bidsapp-demo failed with exit code {code} in {out}:\n{log.getvalue()}")
    LOG.info(f"[bidsapp-docs] demo ran in {time.monotonic() - start:.0f} s: {out}")


def _write(path: Path, text: str) -> None:
    """Write only when the text changed (Sphinx then re-reads only the pages that include it)."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def generate_pages(app) -> None:
    """Run the demo and write every generated fragment the pages include."""
    folder = demo_folder()
    _run_demo(folder)
    gen = DOCS / "_generated"
    gen.mkdir(exist_ok=True)
    _write(gen / "options.md", generate.options_markdown())
    _write(gen / "exit_codes.md", generate.exit_codes_markdown())
    _write(gen / "outputs.md", generate.outputs_markdown())
    out = folder / "bidsapp-demo-output"
    wf = generate.demo_workflow(out / "bids", out / "derivatives-bidsapp")
    how = generate.workflow_svg(wf, gen / "workflow.svg")
    _write(gen / "workflow.md", "```{figure} /_generated/workflow.svg\n:alt: the participant workflow of one run\n\n"
           f"The workflow of one run (the demo's sub-01 run-1 with `--trial-estimates lss`), from {how}.\n```\n\n"
           + generate.nodes_markdown(wf) + "\nConnections (what each node passes on):\n\n"
           + generate.connections_markdown(wf))


class ExecPython(Directive):
    """Run the block's Python code at build time; show the code and its printed output."""

    has_content = True

    def run(self):
        env = self.state.document.settings.env
        namespaces = env.temp_data.setdefault("exec_python", {})
        ns = namespaces.setdefault(env.docname, {"__name__": "__main__"})
        code = "\n".join(self.content)
        old, printed = os.getcwd(), io.StringIO()
        os.chdir(demo_folder())
        try:
            with contextlib.redirect_stdout(printed):
                exec(compile(code, f"{env.docname}.md:{self.lineno}", "exec"), ns)  # noqa: S102 - our docs' code
        except Exception:  # noqa: BLE001 - reported as a build error with the traceback
            raise self.error(f"exec-python block failed:\n{traceback.format_exc()}") from None
        finally:
            os.chdir(old)
        shown = [nodes.literal_block(code, code, language="python")]
        if printed.getvalue().strip():
            text = printed.getvalue().rstrip()
            out = nodes.literal_block(text, text, language="none", classes=["exec-output"])
            shown += [nodes.paragraph(text="Output (run when this page was built, on the demo outputs):"), out]
        return shown


def setup(app):
    app.connect("builder-inited", generate_pages)
    app.add_directive("exec-python", ExecPython)
    return {"version": "1", "parallel_read_safe": False, "parallel_write_safe": True}
