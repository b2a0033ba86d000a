"""The SVG figure kit of the run figures: PNG rasters decode to their pixels, tick values are round and inside
their range with labels that tell them apart, the mask outline follows every edge between inside and outside once,
and data map onto each axes' box."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bidsapp.reports import svg
from bidsapp.reports.figures import outline


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (64, 33), (250, 931)])
def test_png_decodes_to_its_pixels(shape):
    rgb = np.random.default_rng(sum(shape)).integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    data = svg.png(rgb)
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), rgb)
    assert svg.png(rgb) == data  # no timestamp: equal images, equal bytes


def test_png_refuses_what_is_not_an_rgb_image():
    with pytest.raises(ValueError, match=r"\(h, w, 3\)"):
        svg.png(np.zeros((4, 4), np.uint8))


def test_grey_levels_and_missing_values():
    rgb = svg.grey(np.array([[-3.0, -2.0, 0.0, 2.0, 5.0, np.nan]]), -2.0, 2.0, bad="#e8a09a")
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 0, 128, 255, 255, 0xE8])
    np.testing.assert_array_equal(rgb[0, 5], [0xE8, 0xA0, 0x9A])


@pytest.mark.parametrize("seed", range(40))
def test_ticks_are_round_inside_and_labelled_apart(seed):
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.integers(-5, 6)
    lo = rng.normal() * scale
    hi = lo + rng.uniform(0.01, 100) * scale
    at_most = int(rng.integers(3, 17))
    ticks = svg.nice_ticks(lo, hi, at_most)
    assert ticks.size >= 2 and ticks.size <= at_most + 1
    assert ticks.min() >= lo - 1e-9 * scale and ticks.max() <= hi + 1e-9 * scale
    step = np.diff(ticks)
    np.testing.assert_allclose(step, step[0], rtol=1e-6)
    mantissa = step[0] / 10.0 ** np.floor(np.log10(step[0]))
    assert min(abs(mantissa - m) for m in (1, 2, 2.5, 5, 10)) < 1e-6
    labels = svg.tick_labels(ticks)
    assert len(set(labels)) == len(labels) and "-0" not in labels
    np.testing.assert_allclose([float(v) for v in labels], ticks, atol=step[0] * 1e-6)


def _boundary_edges(inside: np.ndarray) -> set:
    """Every unit edge between an inside pixel and an outside one (or the image border), by brute force."""
    edges = set()
    rows, cols = inside.shape
    for r in range(rows):
        for c in range(cols):
            if not inside[r, c]:
                continue
            for dr, dc, edge in ((-1, 0, (r, c, r, c + 1)), (1, 0, (r + 1, c, r + 1, c + 1)),
                                 (0, -1, (r, c, r + 1, c)), (0, 1, (r, c + 1, r + 1, c + 1))):
                rr, cc = r + dr, c + dc
                if not (0 <= rr < rows and 0 <= cc < cols and inside[rr, cc]):
                    edges.add(edge)
    return edges


@pytest.mark.parametrize("seed", range(20))
def test_outline_covers_each_boundary_edge_once(seed):
    rng = np.random.default_rng(seed)
    inside = rng.random((int(rng.integers(1, 20)), int(rng.integers(1, 20)))) < rng.uniform(0.1, 0.9)
    unit = []
    for r0, c0, r1, c1 in outline(inside):
        assert r0 == r1 or c0 == c1
        if r0 == r1:
            unit += [(r0, c, r0, c + 1) for c in range(c0, c1)]
        else:
            unit += [(r, c0, r + 1, c0) for r in range(r0, r1)]
    assert len(unit) == len(set(unit))  # no edge drawn twice
    assert set(unit) == _boundary_edges(inside)


def test_axes_map_data_onto_their_box_and_reversed_limits():
    fig = svg.Figure(200, 100)
    ax = fig.add_axes((10, 20, 100, 50), (0, 10), (5, -5))  # y from 5 at the bottom to -5 at the top
    xs, ys = ax.px([0, 10, 5], [5, -5, 0])
    np.testing.assert_allclose(xs, [10, 110, 60])
    np.testing.assert_allclose(ys, [70, 20, 45])
    ax.line([0, 1, 2, 3, 4], [0, np.nan, 1, 2, np.nan], "#000000")
    assert fig.encode().decode().count("M") >= 2  # a NaN breaks the line
