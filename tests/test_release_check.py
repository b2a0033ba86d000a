"""scripts/check_release.py refuses a release whose tag, pyproject.toml, CHANGELOG.md and CITATION.cff disagree."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
_spec = importlib.util.spec_from_file_location("check_release", ROOT / "scripts" / "check_release.py")
check_release = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_release)

CHANGELOG = """# Changelog

## [Unreleased]

- something new

## [1.2.0] - 2026-12-10

### Added
- maps

## [1.1.0] - 2026-11-30

- first
"""
CITATION = 'cff-version: 1.2.0\ntitle: "x"\nversion: "{version}"\ndate-released: "{date}"\n'


@pytest.fixture()
def tree(tmp_path) -> Path:
    """A project tree whose version sources agree on 1.2.0."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    _set_version(tmp_path, "1.2.0")
    (tmp_path / "CHANGELOG.md").write_text(CHANGELOG)
    (tmp_path / "CITATION.cff").write_text(CITATION.format(version="1.2.0", date="2026-12-10"))
    return tmp_path


def _set_version(root: Path, version: str) -> None:
    p = root / "pyproject.toml"
    text = p.read_text()
    old = check_release.pyproject_version(text)
    p.write_text(text.replace(f'version = "{old}"', f'version = "{version}"', 1))


def test_the_repository_agrees_with_itself():
    assert check_release.problems(ROOT) == []
    version = check_release.pyproject_version((ROOT / "pyproject.toml").read_text())
    assert check_release.problems(ROOT, f"v{version}") == []


def test_agreeing_sources_pass(tree):
    assert check_release.problems(tree) == [] and check_release.problems(tree, "v1.2.0") == []


@pytest.mark.parametrize("tag", ["v1.1.0", "v1.2.1", "1.2.0", "v1.2.0rc1"])
def test_a_tag_other_than_pyprojects_version_is_refused(tree, tag):
    (found,) = check_release.problems(tree, tag)
    assert f"tag {tag} does not match pyproject.toml's version 1.2.0" in found


def test_pyproject_ahead_of_the_changelog_is_refused(tree):
    _set_version(tree, "1.3.0")
    (tree / "CITATION.cff").write_text(CITATION.format(version="1.3.0", date="2026-12-10"))
    found = check_release.problems(tree, "v1.3.0")
    assert found == ["CHANGELOG.md's newest release is 1.2.0, pyproject.toml says 1.3.0: add a "
                     "'## [1.3.0] - YYYY-MM-DD' section above it"]


@pytest.mark.parametrize(("changelog", "expected"), [
    (CHANGELOG.replace("## [1.2.0] - 2026-12-10", "## [1.2.0] - soon"), "has date 'soon', not YYYY-MM-DD"),
    (CHANGELOG.replace("## [1.1.0]", "## [1.2.0]"), "lists a release twice"),
    (CHANGELOG.replace("## [1.1.0]", "## [1.3.0]"), "not newest first"),
    ("# Changelog\n\n## [Unreleased]\n", "has no release section"),
])
def test_a_malformed_changelog_is_refused(tree, changelog, expected):
    (tree / "CHANGELOG.md").write_text(changelog)
    assert any(expected in p for p in check_release.problems(tree, "v1.2.0"))


def test_citation_must_name_the_release(tree):
    (tree / "CITATION.cff").write_text(CITATION.format(version="1.1.0", date="2026-12-10"))
    assert check_release.problems(tree) == ["CITATION.cff says version 1.1.0, pyproject.toml 1.2.0"]
    (tree / "CITATION.cff").write_text(CITATION.format(version="1.2.0", date="2026-12-01"))
    assert check_release.problems(tree) == ["CITATION.cff says date-released 2026-12-01, CHANGELOG.md 2026-12-10"]


@pytest.mark.parametrize(("tag", "others", "newest"), [
    ("v1.2.0", ["v1.1.0", "v1.2.0", "v0.9.9"], True),
    ("v1.2.0", ["v1.10.0"], False),            # numeric, not text, order
    ("v1.2.1", ["v1.2.0", "v2.0.0rc1"], True),  # a pre-release is never the newest release
    ("v2.0.0rc1", ["v1.2.0"], False),
    ("v1.2.0", ["v1.2.0", "nightly"], True),    # tags that are not versions are ignored
])
def test_is_newest(tag, others, newest):
    assert check_release.is_newest(tag, others) is newest


def test_release_notes_are_the_versions_section():
    assert check_release.release_notes(CHANGELOG, "1.2.0") == "### Added\n- maps\n"
    assert check_release.release_notes(CHANGELOG, "1.1.0") == "- first\n"
    with pytest.raises(ValueError, match="no section for 9.9.9"):
        check_release.release_notes(CHANGELOG, "9.9.9")


def test_command_line(capsys):
    assert check_release.main(["v0.0.0-nope"]) == 1
    assert "does not match pyproject.toml's version" in capsys.readouterr().err
    assert check_release.main(["a", "b"]) == 2
    assert check_release.main(["--is-newest", "vX"]) == 2
    assert check_release.main([]) == 0 and "agree on" in capsys.readouterr().out
