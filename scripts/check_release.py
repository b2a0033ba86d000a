#!/usr/bin/env python3
"""Refuse a release whose version sources disagree: the tag, ``pyproject.toml``, ``CHANGELOG.md`` and
``CITATION.cff`` must name one version.

Usage::

    python scripts/check_release.py              # pyproject, the newest CHANGELOG release and CITATION agree
    python scripts/check_release.py v1.2.3       # ... and the tag is v<that version>
    python scripts/check_release.py --is-newest v1.2.3 v1.0.0 v1.2.2   # prints true when v1.2.3 is the newest tag
    python scripts/check_release.py --notes 1.2.3   # prints the changelog's section of 1.2.3 (release notes)

Exit 0 when they agree (one line saying so), 1 with one line per disagreement, 2 for a bad command line.
The release workflow (.github/workflows/release.yml) runs it first; .ci/run runs it without a tag.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: a release heading of the changelog: ``## [1.2.3] - 2026-12-03``
RELEASE = re.compile(r"^## \[(?P<version>[^\]]+)\] - (?P<date>\S+)\s*$", re.M)
VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:(a|b|rc)(\d+))?$")


def version_key(version: str) -> tuple:
    """Sort key of ``X.Y.Z[aN|bN|rcN]`` (a pre-release sorts before its release); ValueError for other forms."""
    m = VERSION.match(version)
    if not m:
        raise ValueError(f"{version!r} is not a release version X.Y.Z (or X.Y.Z with aN, bN, rcN)")
    major, minor, patch, pre, n = m.groups()
    return int(major), int(minor), int(patch), (pre or "z"), int(n or 0)


def pyproject_version(text: str) -> str | None:
    """The ``version`` of the ``[project]`` table."""
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    m = re.search(r'^version\s*=\s*"([^"]+)"\s*$', project.group(1), re.M) if project else None
    return m.group(1) if m else None


def changelog_releases(text: str) -> list[tuple[str, str]]:
    """(version, date) of every release heading, in the file's order (newest first)."""
    return [(m.group("version"), m.group("date")) for m in RELEASE.finditer(text)]


def citation_fields(text: str) -> dict[str, str]:
    """``version`` and ``date-released`` of CITATION.cff (top-level keys, quotes removed)."""
    out = {}
    for key in ("version", "date-released"):
        m = re.search(rf"^{key}:\s*['\"]?([^'\"\n]+?)['\"]?\s*$", text, re.M)
        if m:
            out[key] = m.group(1)
    return out


def _changelog_problems(releases: list[tuple[str, str]], version: str) -> list[str]:
    if not releases:
        return ["CHANGELOG.md has no release section '## [X.Y.Z] - YYYY-MM-DD'"]
    problems = []
    newest, date = releases[0]
    if newest != version:
        problems.append(f"CHANGELOG.md's newest release is {newest}, pyproject.toml says {version}: "
                        f"add a '## [{version}] - YYYY-MM-DD' section above it")
    try:
        dt.date.fromisoformat(date)
    except ValueError:
        problems.append(f"CHANGELOG.md: release {newest} has date {date!r}, not YYYY-MM-DD")
    versions = [v for v, _ in releases]
    if len(set(versions)) != len(versions):
        problems.append(f"CHANGELOG.md lists a release twice: {versions}")
    try:
        if [version_key(v) for v in versions] != sorted(map(version_key, versions), reverse=True):
            problems.append(f"CHANGELOG.md's releases are not newest first: {versions}")
    except ValueError as exc:
        problems.append(f"CHANGELOG.md: {exc}")
    return problems


def release_notes(text: str, version: str) -> str:
    """The body of the changelog's section of ``version`` (its subsections and entries), for the GitHub release."""
    heads = list(RELEASE.finditer(text))
    for i, m in enumerate(heads):
        if m.group("version") == version:
            end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
            return text[m.end():end].strip() + "\n"
    raise ValueError(f"CHANGELOG.md has no section for {version}")


def problems(root: Path = ROOT, tag: str | None = None) -> list[str]:
    """Every disagreement between the tag (when given), pyproject.toml, CHANGELOG.md and CITATION.cff."""
    version = pyproject_version((root / "pyproject.toml").read_text())
    if version is None:
        return ["pyproject.toml has no version in its [project] table"]
    out = []
    if tag is not None and tag != f"v{version}":
        out.append(f"tag {tag} does not match pyproject.toml's version {version} (expected tag v{version})")
    try:
        version_key(version)
    except ValueError as exc:
        out.append(f"pyproject.toml: {exc}")
    releases = changelog_releases((root / "CHANGELOG.md").read_text())
    out += _changelog_problems(releases, version)
    cff = citation_fields((root / "CITATION.cff").read_text())
    if cff.get("version") != version:
        out.append(f"CITATION.cff says version {cff.get('version')}, pyproject.toml {version}")
    if releases and releases[0][0] == version and cff.get("date-released") != releases[0][1]:
        out.append(f"CITATION.cff says date-released {cff.get('date-released')}, CHANGELOG.md {releases[0][1]}")
    return out


def is_newest(tag: str, tags: list[str]) -> bool:
    """Whether ``tag`` is the newest release among ``tags``: pre-releases are never the newest and do not count,
    tags that are not versions are ignored."""
    key = version_key(tag.removeprefix("v"))
    if key[3] != "z":
        return False
    others = []
    for t in tags:
        try:
            other = version_key(t.removeprefix("v"))
        except ValueError:
            continue
        if other[3] == "z":
            others.append(other)
    return all(key >= k for k in others)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--is-newest"] and len(args) >= 2:
        try:
            print("true" if is_newest(args[1], args[2:]) else "false")
        except ValueError as exc:
            print(f"check_release: tag {args[1]}: {exc}", file=sys.stderr)
            return 2
        return 0
    if args[:1] == ["--notes"] and len(args) == 2:
        try:
            print(release_notes((ROOT / "CHANGELOG.md").read_text(), args[1]), end="")
        except ValueError as exc:
            print(f"check_release: {exc}", file=sys.stderr)
            return 1
        return 0
    if len(args) > 1 or (args and not args[0].startswith("v")):
        print("usage: check_release.py [vX.Y.Z] | --is-newest vX.Y.Z [OTHER_TAGS ...] | --notes X.Y.Z", file=sys.stderr)
        return 2
    found = problems(ROOT, args[0] if args else None)
    for p in found:
        print(f"check_release: {p}", file=sys.stderr)
    if not found:
        version = pyproject_version((ROOT / "pyproject.toml").read_text())
        print(f"check_release: {'tag ' + args[0] + ', ' if args else ''}pyproject.toml, CHANGELOG.md and "
              f"CITATION.cff agree on {version}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
