"""The documentation's generated pages say what the code says, and the internal-link check finds broken links.

(The site itself is built by .ci/run with warnings as errors; its code blocks run in tests/test_readme.py, the
outputs specification is checked in tests/test_outputs_specification.py.)
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))
sys.path.insert(0, str(ROOT / "docs"))

import check_links  # noqa: E402
import generate  # noqa: E402


def test_options_page_has_every_option_of_the_parser():
    from bidsapp.cli.parser import build_parser
    from bidsapp.options import OPTIONS

    page = generate.options_markdown()
    parser = build_parser()
    shown = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    for action in shown:
        assert f"`{generate._cell(generate._invocation(parser, action))}" in page, action.dest
    for option in OPTIONS:
        if option.derived:
            assert option.help not in page  # not an option of its own: no row
            continue
        row = next(line for line in page.splitlines() if option.help.split("%")[0].replace("|", "\\|") in line)
        assert row.endswith(f"| {'yes' if option.hashed else 'no'} | {', '.join(option.steps)} |"), option.name
    assert "--participant_label" in page  # hidden BIDS Apps spelling, named as an alias


def test_exit_codes_page_is_the_parsers_list():
    from bidsapp.cli.parser import EXIT_CODES

    page = generate.exit_codes_markdown()
    assert len(page.splitlines()) == len(EXIT_CODES) + 2
    for code, text in EXIT_CODES:
        assert f"| {code} | {generate._cell(text)} |" in page


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    from bidsapp.demo import make_dataset

    base = tmp_path_factory.mktemp("docs-graph")
    make_dataset(base / "bids", n_volumes=60)  # 30 volumes cannot hold the default model: refused while planning
    return generate.demo_workflow(base / "bids", base / "out")


def test_nodes_and_connections_are_the_workflows(workflow):
    nodes = generate.nodes_markdown(workflow)
    for name in ("inputnode", "mask", "masking", "cleaning", "segmentation", "provenance", "derivatives"):
        assert f"| `{name}` |" in nodes
    assert "`--low-pass`" in nodes.split("| `cleaning` |")[1].splitlines()[0]  # options reach their node
    edges = generate.connections_markdown(workflow)
    assert len(edges.splitlines()) == 2 + len(workflow._graph.edges())
    assert "| `cleaning` | `segmentation` |" in edges and "`cleaned`" in edges


def test_workflow_graph_without_graphviz_is_drawn_in_python(workflow, tmp_path, monkeypatch):
    monkeypatch.setattr(generate.shutil, "which", lambda name: None)
    svg = tmp_path / "workflow.svg"
    how = generate.workflow_svg(workflow, svg)
    assert "pure Python" in how
    root = ET.parse(svg).getroot()
    labels = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert labels == {n.name for n in workflow._graph.nodes()}
    assert len(list(root.iter("{http://www.w3.org/2000/svg}line"))) == len(workflow._graph.edges())


def _site(tmp_path: Path, links: str) -> Path:
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text(f'<html><body><h1 id="top">x</h1>{links}</body></html>')
    (tmp_path / "sub" / "page.html").write_text('<html><body><section id="usage">u</section>'
                                                '<a href="../index.html#top">up</a></body></html>')
    (tmp_path / "style.css").write_text("")
    return tmp_path


def test_internal_links_that_resolve_pass(tmp_path):
    site = _site(tmp_path, '<a href="sub/page.html#usage">u</a><a href="#top">t</a><link href="style.css">'
                           '<a href="https://example.org/missing">e</a><a href="mailto:x@y">m</a>')
    assert check_links.broken_links(site) == []


@pytest.mark.parametrize(("link", "reason"), [
    ("sub/nope.html", "no such file"),
    ("sub/page.html#nope", "no id 'nope' in page.html"),
    ("#nowhere", "no id 'nowhere' in index.html"),
    ("../outside.html", "leaves the site"),
])
def test_broken_internal_links_are_found(tmp_path, link, reason, capsys):
    site = _site(tmp_path, f'<a href="{link}">x</a>')
    assert check_links.broken_links(site) == [f"index.html: {link} ({reason})"]
    assert check_links.main([str(site)]) == 1 and "1 broken" in capsys.readouterr().out
