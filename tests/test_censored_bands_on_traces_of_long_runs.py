"""The FD and DVARS panels of the carpet figure mark every censored volume of a long run: a volume narrower than a
pixel was drawn as a band that antialiasing faded to nothing (a red team counted 10 of 31 groups on the FD panel of a
1,500-volume run), so the bands are at least one pixel wide."""

from __future__ import annotations

import io

import numpy as np
import pytest

from bidsapp.reports import figures as F


def _rgb(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _bands(min_pixels: float, seed: int) -> tuple[int, int]:
    """(bands seen, isolated censored volumes) on a 950-pixel-wide trace of 4,000 volumes at TR 0.5 s."""
    rng = np.random.default_rng(seed)
    n, t_r = 4000, 0.5
    censored = np.sort(rng.choice(np.arange(10, n - 10, 40), 60, replace=False))
    fig, ax = F.new_figure((950 / F.DPI, 1.0))
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1)
    ax.set_xlim(-t_r / 2, (n - 0.5) * t_r)
    ax.set_axis_off()
    F._shade(ax, F.censored_spans(censored * t_r, t_r), min_pixels=min_pixels)
    row = _rgb(F.encode(fig))[48]
    reddish = (row[:, 0] - row[:, 2]) > 20  # any visible tint of the band colour over white
    return int(np.count_nonzero(np.diff(np.r_[0, reddish.astype(int)]) == 1)), censored.size


@pytest.mark.parametrize("seed", range(3))
def test_every_isolated_censored_volume_is_a_visible_band(seed):
    seen, expected = _bands(1.0, seed)
    assert seen == expected


def test_without_the_minimum_width_bands_were_lost():
    seen, expected = _bands(0.0, 0)
    assert seen < expected  # the test can tell: sub-pixel bands fade


def test_the_minimum_width_keeps_wide_spans_as_they_are():
    fig, ax = F.new_figure((4, 1))
    ax.set_xlim(0, 100)
    spans = np.array([[10.0, 30.0], [50.0, 50.01]])
    F._shade(ax, spans, min_pixels=1.0)
    (coll,) = ax.collections
    xs = [p.vertices[:, 0] for p in coll.get_paths()]
    assert np.allclose([xs[0].min(), xs[0].max()], [10, 30])
    px = 100 / ax.get_window_extent().width
    assert xs[1].max() - xs[1].min() == pytest.approx(px) and np.mean(xs[1][:4]) == pytest.approx(50.005)
