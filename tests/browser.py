"""Render an HTML report in headless Chromium: every image decoded, no console message, no external URL.

The report is copied beside a probe script (the report itself has none) that records, once the page has
loaded, how many images it has and which ones did not decode (``naturalWidth == 0``); Chromium dumps the DOM
and logs console messages to stderr. Host names resolve to nothing, so a report that needs the network
shows broken images.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND"]
PROBE = ("<script>window.addEventListener('load',function(){var imgs=[].slice.call(document.images);"
         "var bad=imgs.filter(function(i){return !(i.complete&&i.naturalWidth>0);}).map(function(i){return i.alt;});"
         "var r=document.documentElement;r.setAttribute('data-images',imgs.length);"
         "r.setAttribute('data-broken',JSON.stringify(bad));"
         "r.setAttribute('data-widths',JSON.stringify(imgs.map(function(i){return i.naturalWidth;})));});</script>")
#: attributes and CSS that would fetch something
EXTERNAL = re.compile(r"""(?:src|href|srcset|poster|data)\s*=\s*['"](?!data:|#)[^'"]+|url\(\s*['"]?(?!data:)|@import""",
                      re.IGNORECASE)


@dataclass
class Rendered:
    """What Chromium saw."""

    n_images: int
    broken: list[str]
    widths: list[int]
    console: list[str]
    external: list[str]


def _run(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    """Chromium with a short $TMPDIR of its own (its singleton socket path must fit in 108 bytes; pytest's
    temporary folders are longer), removed after."""
    short = tempfile.mkdtemp(prefix="chromium-", dir="/tmp" if os.path.isdir("/tmp") else None)
    try:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=180, env=dict(os.environ, TMPDIR=short))
    finally:
        shutil.rmtree(short, ignore_errors=True)


def render(report: Path, work: Path) -> Rendered:
    """Load ``report`` (with the probe) in Chromium and return what it saw."""
    text = Path(report).read_text()
    work.mkdir(parents=True, exist_ok=True)
    probed = work / f"probe-{Path(report).name}"
    probed.write_text(text.replace("</body>", PROBE + "</body>"))
    done = _run(["--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000", "--dump-dom",
                 probed.as_uri()], work / "profile")
    assert done.returncode == 0, done.stderr[-2000:]
    root = re.search(r"<html[^>]*>", done.stdout)
    assert root, f"no DOM dumped for {report}: {done.stderr[-2000:]}"

    def attr(name: str) -> str:
        found = re.search(rf'{name}="([^"]*)"', root.group(0))
        assert found, f"the probe did not run on {report} (no {name}): {done.stderr[-2000:]}"
        return found.group(1).replace("&quot;", '"')

    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return Rendered(n_images=int(attr("data-images")), broken=json.loads(attr("data-broken")),
                    widths=json.loads(attr("data-widths")), console=console,
                    external=EXTERNAL.findall(text))


def screenshot(report: Path, png: Path, work: Path, size: str = "1280,2400") -> Path:
    """A PNG of the report's first ``size`` pixels (width, height)."""
    done = _run([f"--screenshot={png}", f"--window-size={size}", "--hide-scrollbars", Path(report).as_uri()],
                work / "profile-shot")
    assert done.returncode == 0 and png.exists(), done.stderr[-2000:]
    return png


def svg_pixels(svg: bytes, work: Path):
    """An SVG figure as Chromium draws it: an (height, width, 3) int array at one device pixel per SVG pixel."""
    import numpy as np
    from PIL import Image

    width, height = (round(float(v)) for v in re.search(rb"width='([\d.]+)' height='([\d.]+)'", svg).groups())
    work.mkdir(parents=True, exist_ok=True)
    path, png = work / "figure.svg", work / "figure.png"
    path.write_bytes(svg)
    # the window is taller than the figure: headless Chromium's window height includes ~90 px that the page does not get
    done = _run([f"--screenshot={png}", f"--window-size={width},{height + 400}", "--hide-scrollbars",
                 "--force-device-scale-factor=1", path.as_uri()], work / "profile-svg")
    assert done.returncode == 0 and png.exists(), done.stderr[-2000:]
    return np.asarray(Image.open(png).convert("RGB")).astype(int)[:height, :width]


TEXT_PROBE = ("<script>window.addEventListener('load',function(){var s=document.querySelector('svg');"
              "var r=s.getBoundingClientRect();var t=[].slice.call(s.querySelectorAll('text')).map(function(e){"
              "var b=e.getBoundingClientRect();return [e.textContent,b.left-r.left,b.top-r.top,b.right-r.left,"
              "b.bottom-r.top];});document.documentElement.setAttribute('data-texts',JSON.stringify(t));"
              "document.documentElement.setAttribute('data-size',JSON.stringify([r.width,r.height]));});</script>")


def svg_text_boxes(svg: bytes, work: Path) -> tuple[tuple[float, float], list[tuple[str, float, float, float, float]]]:
    """The SVG's size and each of its texts' box as Chromium lays it out: ``(text, left, top, right, bottom)``
    in SVG pixels."""
    import html

    work.mkdir(parents=True, exist_ok=True)
    page = work / "texts.html"
    page.write_text("<!doctype html><html><head><meta charset='utf-8'><style>body{margin:0}</style></head><body>"
                    + svg.decode() + TEXT_PROBE + "</body></html>")
    done = _run(["--virtual-time-budget=10000", "--dump-dom", page.as_uri()], work / "profile-texts")
    assert done.returncode == 0, done.stderr[-2000:]
    root = re.search(r"<html[^>]*>", done.stdout)
    found = {k: re.search(rf'{k}="([^"]*)"', root.group(0)) for k in ("data-texts", "data-size")}
    assert all(found.values()), f"the probe did not run: {done.stderr[-2000:]}"
    size = json.loads(html.unescape(found["data-size"].group(1)))
    return (size[0], size[1]), [tuple(t) for t in json.loads(html.unescape(found["data-texts"].group(1)))]
