"""Markdown (and SVG) generated from the code at build time: nothing on these pages is copied by hand.

- :func:`options_markdown`: every option, from the argument parser and the options table;
- :func:`exit_codes_markdown`: the exit codes the parser's ``--help`` lists;
- :func:`outputs_markdown`: the outputs specification (:mod:`bidsapp.outputs.specification`) with the column
  descriptions that the JSON sidecars of the TSV files use;
- :func:`workflow_svg`: the graph of the real participant workflow of one demo run, from nipype.
"""

from __future__ import annotations

import argparse
import html
import logging
import re
import shutil
import subprocess
from pathlib import Path

from bidsapp.outputs import specification as outputs_spec


def _cell(text: object) -> str:
    """A Markdown table cell: pipes escaped, one line."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _default(option) -> str:
    from bidsapp.options import REQUIRED

    value = option.default
    if value is REQUIRED:
        return "required"
    if value is None or value == ():
        return "none"
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    if isinstance(value, bool):  # a --no-... flag is off by default when the setting it turns off is on
        negates = bool(option.flags) and all(f.startswith("--no-") for f in option.flags)
        return "on" if value != negates else "off"
    return str(value)


def _invocation(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser._get_formatter()
    return formatter._format_action_invocation(action)


def options_markdown() -> str:
    """One table per ``--help`` section: every option of the parser, with its row of the options table."""
    from bidsapp.cli.parser import build_parser
    from bidsapp.options import BY_NAME

    parser = build_parser()
    out = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.help != argparse.SUPPRESS]
        if not actions:
            continue
        title = {None: "Positional arguments", "positional arguments": "Positional arguments",
                 "options": "Help and version"}.get(group.title, group.title)
        out += [f"### {title}", "",
                "| option | default | description | changes the numbers | consumed by |",
                "|---|---|---|---|---|"]
        for action in actions:
            if action.dest not in BY_NAME:  # --help, --version: argparse's own
                out.append(f"| `{_cell(_invocation(parser, action))}` | | {_cell(action.help)} | no | |")
                continue
            option = BY_NAME[action.dest]
            spelled = _invocation(parser, action)
            if option.hidden_flags:
                spelled += " (also " + ", ".join(option.hidden_flags) + ")"
            choices = f" Choices: {', '.join(map(str, option.choices))}." if option.choices else ""
            helptext = (action.help or "").replace("%(default)s", _default(option)).replace("%%", "%")
            out.append(f"| `{_cell(spelled)}` | {_cell(_default(option))} | {_cell(helptext + choices)} | "
                       f"{'yes' if option.hashed else 'no'} | {', '.join(option.steps)} |")
        out.append("")
    return "\n".join(out)


def exit_codes_markdown() -> str:
    """The exit codes, as ``bidsapp --help`` prints them."""
    from bidsapp.cli.parser import EXIT_CODES

    rows = ["| exit code | meaning |", "|---|---|"] + [f"| {code} | {_cell(text)} |" for code, text in EXIT_CODES]
    return "\n".join(rows) + "\n"


def _columns_table(descriptions: dict[str, dict]) -> list[str]:
    rows = ["| column | description | units | levels |", "|---|---|---|---|"]
    for name, d in descriptions.items():
        levels = "; ".join(f"{k}: {v}" for k, v in d.get("Levels", {}).items())
        rows.append(f"| `{name}` | {_cell(d.get('Description', ''))} | {_cell(d.get('Units', ''))} | "
                    f"{_cell(levels)} |")
    return rows + [""]


def _table_section(kind: str) -> list[str]:
    from bidsapp.core import columns as spaces
    from bidsapp.outputs import descriptions as columns

    if kind != "features":
        out = _columns_table(columns.KINDS[kind]({}))
        if kind in ("trials", "betas"):
            out.append("Every other column of the run's `events.tsv` is there too, copied unchanged, after "
                       "`trial_type` (a column named like one of these gets the prefix `events_`).\n")
        return out
    out = []
    for name, cls in spaces.KINDS.items():
        out += [f"Column space `{name}` ({cls.what}):", "", *_columns_table(cls.feature_descriptions())]
    return out


_LEVELS = {"run": "Per run", "dataset": "Per output folder", "group": "Group level"}


def outputs_markdown() -> str:
    """The outputs specification as Markdown: placeholders, files by level (with columns), sidecar keys."""
    out = ["## Placeholders", "", "| placeholder | stands for |", "|---|---|"]
    for name, (expansion, meaning) in outputs_spec.PLACEHOLDERS.items():
        regex = expansion.startswith("re:")
        shown = f"regular expression `{_cell(expansion[3:])}`" if regex else f"`{_cell(expansion)}`"
        out.append(f"| `<{name}>` | {_cell(meaning)}: {shown} |")
    out.append("")
    for level, title in _LEVELS.items():
        out += [f"## {title}", ""]
        for entry in (e for e in outputs_spec.OUTPUTS if e.level == level):
            name = Path(entry.patterns[0]).name  # a run's file: its suffix after the entities
            name = re.sub(r"^.*[>\]](?=_[^<>\[\]]*$)", "", name)
            out += [f"### `{name}`", "", *(f"- `{p}`" for p in entry.patterns), "",
                    f"{entry.what} **Written:** {entry.when}.", ""]
            if entry.table:
                out += [f"Columns (the same text as the `{entry.table}` JSON sidecar):", "",
                        *_table_section(entry.table)]
    out += ["## Keys of the run sidecar (`_timeseries.json`)", "", "| key | what it holds | present |", "|---|---|---|"]
    out += [f"| `{k}` | {_cell(what)} | {_cell(when)} |" for k, (what, when) in outputs_spec.SIDECAR_KEYS.items()]
    return "\n".join(out) + "\n"


def demo_workflow(bids: Path, out: Path):
    """The participant workflow of the demo's sub-01 run-1 with LSS, built (never run) as ``bidsapp`` builds it."""
    from bidsapp.bids.collect import collect_runs
    from bidsapp.cli.parser import parse_args
    from bidsapp.cli.run import plan_run
    from bidsapp.options import step_specs
    from bidsapp.workflows.base import init_run_wf

    s = parse_args([str(bids), str(out), "participant", "--participant-label", "01", "--run", "1",
                    "--trial-estimates", "lss", "--mem-gb", "64"])
    run = collect_runs(**step_specs(s)["collection"])[0]
    return init_run_wf(plan_run(run, s, None))


def _layers(graph) -> list[list]:
    import networkx as nx

    return [sorted(layer, key=lambda n: n.name) for layer in nx.topological_generations(graph)]


def _svg_fallback(graph, path: Path) -> None:
    """A layered drawing of the graph in pure Python (used when Graphviz's ``dot`` is not installed)."""
    layers = _layers(graph)
    where = {n: (60 + 170 * i, 50 + 70 * j) for i, layer in enumerate(layers) for j, n in enumerate(layer)}
    width, height = 170 * len(layers) + 40, 70 * max(map(len, layers)) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif"'
             ' font-size="13">']
    for u, v in graph.edges():
        (x1, y1), (x2, y2) = where[u], where[v]
        parts.append(f'<line x1="{x1 + 55}" y1="{y1}" x2="{x2 - 55}" y2="{y2}" stroke="#555"/>')
    for node, (x, y) in where.items():
        parts.append(f'<rect x="{x - 55}" y="{y - 16}" width="110" height="32" rx="6" fill="#eef" stroke="#335"/>'
                     f'<text x="{x}" y="{y + 5}" text-anchor="middle">{html.escape(node.name)}</text>')
    path.write_text("\n".join(parts) + "\n</svg>\n")


def workflow_svg(wf, path: Path) -> str:
    """Draw the workflow's graph into ``path`` (SVG); returns how it was drawn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if shutil.which("dot"):
        dotfile = path.with_suffix(".dot")
        wf.base_dir = str(path.parent / "graph-work")
        logger = logging.getLogger("nipype.workflow")
        level = logger.level
        logger.setLevel(logging.WARNING)  # nipype logs every graph it writes
        try:
            wf.write_graph(dotfilename=str(dotfile), graph2use="orig", format="svg", simple_form=True)
        finally:
            logger.setLevel(level)
        subprocess.run(["dot", "-Tsvg", str(dotfile), "-o", str(path)], check=True)
        return "nipype's write_graph (graph2use='orig'), drawn by Graphviz dot"
    _svg_fallback(wf._graph, path)
    return "nipype's graph of nodes, drawn in pure Python (Graphviz dot is not installed)"


def nodes_markdown(wf) -> str:
    """One row per node of the workflow: its interface, what it does (the interface's docstring) and the options
    whose table row names its step."""
    import inspect

    from bidsapp.options import OPTIONS

    step_of = {"derivatives": "outputs"}
    rows = ["| node | interface | what it does | options it receives |", "|---|---|---|---|"]
    for layer in _layers(wf._graph):
        for node in layer:
            cls = type(node.interface)
            doc = (inspect.getdoc(cls) or "").split("\n\n")[0]
            if cls.__name__ == "IdentityInterface":  # the workflow's edges
                doc = "Edge of the run's workflow, fields: " + ", ".join(node.inputs.copyable_trait_names())
            step = step_of.get(node.name, node.name)
            flags = [o.flags[0] for o in OPTIONS if step in o.steps and o.flags]
            module = cls.__module__.removeprefix("bidsapp.").removeprefix("nipype.interfaces.")
            rows.append(f"| `{node.name}` | `{cls.__name__}` ({module}) | {_cell(doc)} | "
                        f"{' '.join(f'`{f}`' for f in flags)} |")
    return "\n".join(rows) + "\n"


def connections_markdown(wf) -> str:
    """One row per edge of the workflow: the outputs of one node connected to the inputs of the next."""
    rows = ["| from | to | outputs -> inputs |", "|---|---|---|"]
    order = {n: i for i, layer in enumerate(_layers(wf._graph)) for n in layer}
    for u, v, data in sorted(wf._graph.edges(data=True), key=lambda e: (order[e[0]], e[0].name, order[e[1]])):
        fields = ", ".join(f"`{a}` -> `{b}`" if a != b else f"`{a}`" for a, b in data["connect"])
        rows.append(f"| `{u.name}` | `{v.name}` | {fields} |")
    return "\n".join(rows) + "\n"
