"""Check the links of the built HTML site that point inside it: every target file exists, every #fragment is an
id of its target page. External links (http, https, mailto) are not followed (the build has no network).

Usage: ``python docs/check_links.py docs/_build/html`` (exit 1 listing each broken link).
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    """The ids and the link targets (``href``, ``src``) of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)
            elif (name == "href" and tag in ("a", "link")) or (name == "src" and tag in ("img", "script")):
                if value:
                    self.links.append(value)


def _parse(path: Path, cache: dict[Path, _Page]) -> _Page:
    if path not in cache:
        page = _Page()
        page.feed(path.read_text(encoding="utf-8", errors="replace"))
        cache[path] = page
    return cache[path]


def broken_links(site: Path) -> list[str]:
    """``page: link (reason)`` for every internal link of the site that does not resolve."""
    site = Path(site).resolve()
    cache: dict[Path, _Page] = {}
    problems = []
    for page_path in sorted(site.rglob("*.html")):
        for link in _parse(page_path, cache).links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc:
                continue  # external (http, https, mailto, data): not checked here
            target = (page_path.parent / unquote(parts.path)).resolve() if parts.path else page_path
            where = f"{page_path.relative_to(site)}: {link}"
            if site not in target.parents and target != site:
                problems.append(f"{where} (leaves the site)")
            elif target.is_dir():
                if not (target / "index.html").is_file():
                    problems.append(f"{where} (folder without index.html)")
            elif not target.is_file():
                problems.append(f"{where} (no such file)")
            elif parts.fragment and target.suffix == ".html" and parts.fragment not in _parse(target, cache).ids:
                problems.append(f"{where} (no id {parts.fragment!r} in {target.name})")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python docs/check_links.py BUILT_HTML_FOLDER", file=sys.stderr)
        return 2
    problems = broken_links(Path(args[0]))
    n_pages = len(list(Path(args[0]).rglob("*.html")))
    for p in problems:
        print(f"broken link: {p}")
    print(f"internal links of {n_pages} pages: {'OK' if not problems else f'{len(problems)} broken'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
