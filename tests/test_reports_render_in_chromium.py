"""Every report (participant, group) opens offline in headless Chromium with no console message and every
image decoded. Set BIDSAPP_SCREENSHOT_DIR to keep a screenshot of a participant report (CI prints its path)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

from tests.browser import CHROMIUM, render, screenshot

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install "
                                                         "chromium); the reports cannot be rendered")


def _check(report: Path, work: Path, at_least: int) -> None:
    seen = render(report, work)
    assert seen.external == [], f"{report.name} refers to external resources: {seen.external}"
    assert seen.console == [], f"{report.name}: console messages: {seen.console}"
    assert seen.broken == [], f"{report.name}: images that did not decode: {seen.broken}"
    assert seen.n_images >= at_least and all(w > 0 for w in seen.widths)


def test_the_probe_sees_broken_images_and_console_errors(tmp_path):
    """The check itself can fail: an external image (no network) and a script error are both caught."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!doctype html><html><body><img src='https://example.org/x.png' alt='remote'>"
                   "<img src='data:image/png;base64,AAAA' alt='corrupt'><script>nosuchfunction()</script>"
                   "</body></html>")
    seen = render(bad, tmp_path / "work")
    assert sorted(seen.broken) == ["corrupt", "remote"]
    assert any("nosuchfunction" in line for line in seen.console)
    assert seen.external == ["src='https://example.org/x.png"]


def test_participant_and_group_reports_render(demo_outputs, tmp_path):
    from bidsapp.cli.run import main

    out = demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp"
    reports = sorted(out.glob("sub-*.html"))
    assert len(reports) == 3
    for report in reports:
        n_runs = report.read_text().count("<h2 id='sub-")
        _check(report, tmp_path / report.stem, at_least=3 * n_runs)  # columns, carpet, trials per run
    group = tmp_path / "group"
    import shutil

    shutil.copytree(out, group)
    assert main([str(demo_outputs / "bidsapp-demo-output" / "bids"), str(group), "group"]) == 0
    _check(group / "group.html", tmp_path / "group-render", at_least=0)
    keep = os.environ.get("BIDSAPP_SCREENSHOT_DIR")
    folder = Path(keep) if keep else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    png = screenshot(out / "sub-01.html", folder / "participant-report-sub-01.png", tmp_path)
    print(f"participant report screenshot: {png}")
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png.read_bytes())).convert("L"))
    assert img.shape == (2400, 1280) and img.std() > 10  # not a blank page
