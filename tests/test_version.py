"""The version has one source, pyproject.toml: the package, scripts/version.sh (image tag, labels) agree."""

import re
import subprocess
from pathlib import Path

import bidsapp

ROOT = Path(__file__).resolve().parents[1]


def test_version_comes_from_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'^version = "([^"]+)"$', text, re.MULTILINE)
    assert match, "pyproject.toml has no version line"
    assert bidsapp.__version__ == match.group(1)
    out = subprocess.run(["sh", str(ROOT / "scripts" / "version.sh")], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == match.group(1)


def test_no_hard_coded_version_in_container_files():
    version = bidsapp.__version__
    for name in ("Dockerfile", "singularity.def", ".github/workflows/ci.yml"):
        assert version not in (ROOT / name).read_text(), f"{name} hard-codes {version}; read it from pyproject.toml"
