"""The FD and DVARS panels of the carpet figure mark every censored volume of a long run: a volume narrower than a
pixel was drawn as a band that antialiasing faded to nothing (a red team counted 10 of 31 groups on the FD panel of a
1,500-volume run), so the bands are at least one pixel wide. Checked as Chromium draws the SVG."""

from __future__ import annotations

import numpy as np
import pytest

from bidsapp.reports import figures as F
from bidsapp.reports import svg
from tests.browser import CHROMIUM, svg_pixels

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install "
                                                             "chromium); the figure cannot be drawn")


def _runs(row: np.ndarray) -> int:
    reddish = (row[:, 0] - row[:, 2]) > 20  # any visible tint of the band colour over white
    return int(np.count_nonzero(np.diff(np.r_[0, reddish.astype(int)]) == 1))


def _bands(min_px: float, seed: int, work) -> tuple[int, int]:
    """(bands seen, isolated censored volumes) on a 950-pixel-wide trace of 4,000 volumes at TR 0.5 s."""
    rng = np.random.default_rng(seed)
    n, t_r = 4000, 0.5
    censored = np.sort(rng.choice(np.arange(10, n - 10, 40), 60, replace=False))
    fig = svg.Figure(950, 96)
    ax = fig.add_axes((0, 0, 950, 96), (-t_r / 2, (n - 0.5) * t_r), (0, 1))
    ax.bands(F.censored_spans(censored * t_r, t_r), F.CENSORED, min_px=min_px)
    return _runs(svg_pixels(fig.encode(), work)[48]), censored.size


@needs_chromium
@pytest.mark.parametrize("seed", range(3))
def test_every_isolated_censored_volume_is_a_visible_band(tmp_path, seed):
    seen, expected = _bands(1.0, seed, tmp_path)
    assert seen == expected


@needs_chromium
def test_without_the_minimum_width_bands_were_lost(tmp_path):
    seen, expected = _bands(0.0, 0, tmp_path)
    assert seen < expected  # the test can tell: sub-pixel bands fade


@needs_chromium
def test_the_carpet_figure_marks_each_censored_volume_on_both_traces(tmp_path):
    rng = np.random.default_rng(4)
    n = 1500
    censored = np.zeros(n, bool)
    censored[rng.choice(np.arange(10, n - 10, 25), 31, replace=False)] = True
    figure = F.carpet_plot(rng.normal(size=(n, 50)), rng.normal(size=(n, 50)), t_r=0.72, fd=np.zeros(n),
                           dvars_before=np.zeros(n), dvars_after=np.zeros(n), censored=censored)
    rgb = svg_pixels(figure, tmp_path)
    (fd_top, _), (dvars_top, _) = svg.rows_layout(F.CARPET_MARGINS["top"], F.CARPET_SIZE[1] - F.CARPET_MARGINS[
        "bottom"], F.CARPET_HEIGHTS, F.CARPET_MARGINS["gap"])[:2]
    left, right = F.CARPET_MARGINS["left"] + 2, F.CARPET_SIZE[0] - F.CARPET_MARGINS["right"] - 2
    for top in (fd_top, dvars_top):
        assert _runs(rgb[round(top) + 45, left:right]) == 31  # mid-panel, above the traces drawn at 0


def test_the_minimum_width_keeps_wide_spans_as_they_are():
    fig = svg.Figure(400, 100)
    ax = fig.add_axes((0, 0, 400, 100), (0, 100), (0, 1))
    ax.bands(np.array([[10.0, 30.0], [50.0, 50.01]]), F.CENSORED, min_px=1.0)
    d = fig.encode().decode().split("<path d='")[1].split("'")[0]
    boxes = [part.split("h")[:2] for part in d.split("M")[1:]]
    (x0, w0), (x1, w1) = [(float(a.split()[0]), float(b.split("v")[0])) for a, b in boxes]
    assert (x0, w0) == pytest.approx((40.0, 80.0), abs=0.06)  # 10 to 30 on 4 px per unit
    assert w1 == pytest.approx(1.0) and x1 + w1 / 2 == pytest.approx(200.02, abs=0.06)
