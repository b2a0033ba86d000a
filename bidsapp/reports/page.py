"""HTML building blocks of the reports: one self-contained page (inline CSS, images as data URIs, no URL
fetched), tables, figures and a small Markdown subset for the methods text."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable

CSS = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2.2em;border-bottom:1px solid #ccc}h3{font-size:1.05em}
table{border-collapse:collapse;font-size:.88em;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f6f6f6}.muted{color:#666;font-size:.85em}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#444;font-size:.85em;margin-top:.3em}.methods{background:#fbfbf7;border:1px solid #e8e6d9;
padding:.2em 1.2em;font-size:.92em}nav a{margin-right:1em}.warn{color:#a51d2d}
.wide{overflow-x:auto;max-width:100%}"""


def page(title: str, body: Iterable[str]) -> str:
    """A complete HTML document: inline style, no script, no external resource."""
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def figure(image: bytes, alt: str, caption: str = "", fmt: str = "png") -> str:
    """An image embedded as a base64 data URI, with its caption."""
    mime = {"png": "image/png", "svg": "image/svg+xml"}[fmt]
    data = base64.b64encode(image).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f"<figure><img src='data:{mime};base64,{data}' alt='{html.escape(alt, quote=True)}'>{cap}</figure>"


def table(rows: Iterable[Iterable], header: Iterable[str] | None = None) -> str:
    """An HTML table of escaped cells (``None`` shown as ``n/a``)."""
    def cell(v, tag="td"):
        return f"<{tag}>{html.escape('n/a' if v is None else str(v))}</{tag}>"

    head = "<tr>" + "".join(cell(h, "th") for h in header) + "</tr>" if header else ""
    return "<table>" + head + "".join("<tr>" + "".join(cell(v) for v in r) + "</tr>" for r in rows) + "</table>"


def key_values(rows: Iterable[tuple[str, object]]) -> str:
    """A two-column table: a header cell and its value on each row."""
    return "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                               for k, v in rows) + "</table>"


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"\*([^*]+)\*", r"<em>\1</em>", text)


def markdown(text: str, *, shift: int = 1) -> str:
    """The Markdown the methods text uses (headings, paragraphs, ``-`` lists, code, emphasis) as HTML;
    headings move ``shift`` levels down to sit inside a report section."""
    out, items = [], []
    for block in text.strip().split("\n\n"):
        lines = block.strip().splitlines()
        if not lines:
            continue
        if all(line.startswith("- ") for line in lines):
            items += [f"<li>{_inline(line[2:])}</li>" for line in lines]
            continue
        if items:
            out.append("<ul>" + "".join(items) + "</ul>")
            items = []
        heading = re.match(r"^(#+) (.*)$", lines[0])
        if heading and len(lines) == 1:
            level = min(6, len(heading.group(1)) + shift)
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        else:
            out.append("<p>" + _inline(" ".join(lines)) + "</p>")
    if items:
        out.append("<ul>" + "".join(items) + "</ul>")
    return "\n".join(out)
