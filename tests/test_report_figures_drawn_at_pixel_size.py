"""The report's figures cost what their pixels need: the carpet is reduced to the pixels it is drawn on with every
censored volume still marked, the censored bands of a trace are one path, and the run figures never import
matplotlib (the group figures never import pyplot). The carpet must look the same as drawing every sample."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys

import numpy as np
import pytest

from bidsapp.reports import figures as F
from bidsapp.reports import group_figures as G


def _rgb(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _is(rgb: np.ndarray, colour: str, tol: int = 6) -> np.ndarray:
    target = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return np.abs(rgb - target).max(axis=-1) <= tol


def _pixel_of(n: int, pixels: int) -> np.ndarray:
    """The pixel (bin) of each of n samples spread over ``pixels``."""
    return np.minimum(((np.arange(n) + 0.5) * pixels / n).astype(int), pixels - 1) if n > pixels else np.arange(n)


@pytest.mark.parametrize("seed", range(12))
def test_carpet_pixels_keep_every_mark_and_sample_real_values(seed):
    """Random carpets, pixel sizes, censored volumes and empty columns: the image has min(samples, pixels) on
    each axis, its NaN pixels are exactly the bins holding a NaN, and every other pixel is a sample of its bin."""
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(20, 5000)), int(rng.integers(5, 2500))
    width, height = int(rng.integers(50, 1200)), int(rng.integers(20, 400))
    data = rng.normal(size=(n, k)).astype(np.float32)
    censored = rng.random(n) < rng.uniform(0, 0.2)
    empty = rng.random(k) < rng.uniform(0, 0.05)
    data[censored] = np.nan
    data[:, empty] = np.nan
    image = F.carpet_pixels(data, width, height)
    assert image.shape == (min(k, height), min(n, width))
    px_t, px_c = _pixel_of(n, width), _pixel_of(k, height)
    marked_t, marked_c = np.zeros(image.shape[1], bool), np.zeros(image.shape[0], bool)
    marked_t[px_t[censored]] = True
    marked_c[px_c[empty]] = True
    np.testing.assert_array_equal(np.isnan(image), marked_c[:, None] | marked_t[None, :])
    ok = ~np.isnan(image)
    for r, c in zip(*np.nonzero(ok)[:2]):
        if rng.random() < 0.01:  # spot checks: the value is a sample of the pixel's bin
            assert image[r, c] in data[np.ix_(px_t == c, px_c == r)]


def test_small_carpets_are_left_as_they_are():
    data = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(F.carpet_pixels(data, 10, 10), data.T)


def _draw(image: np.ndarray, n: int, k: int) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3), dpi=G.DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes([0.1, 0.1, 0.8, 0.8])
    ax.imshow(image, aspect="auto", cmap="gray", vmin=-2, vmax=2, extent=[-0.5, n - 0.5, k, 0],
              interpolation="nearest")
    return _rgb(G.encode(fig))


def test_the_reduced_carpet_looks_like_the_whole_one():
    """A carpet of 4,000 volumes x 1,500 columns made of blocks (50 volumes x 30 columns, as slow signal and
    regions give): drawn from its pixels or from every sample, the pictures differ only on block edges."""
    rng = np.random.default_rng(0)
    n, k = 4000, 1500
    blocks = rng.normal(size=(n // 50, k // 30)).astype(np.float32)
    data = np.repeat(np.repeat(blocks, 50, axis=0), 30, axis=1)
    whole = _draw(data.T, n, k)
    box_w, box_h = round(0.8 * 8 * G.DPI), round(0.8 * 3 * G.DPI)
    reduced = _draw(F.carpet_pixels(data, box_w, box_h), n, k)
    differ = (np.abs(whole - reduced).max(axis=-1) > 8).mean()
    assert differ < 0.03, f"{differ:.1%} of the pixels differ"


def test_every_censored_volume_of_a_long_run_is_red_in_the_cleaned_carpet():
    """4,000 volumes on ~950 pixels: 60 censored volumes, isolated, each a red band of the cleaned carpet
    (nearest-neighbour drawing of every sample showed about a quarter of them)."""
    rng = np.random.default_rng(1)
    n, k = 4000, 600
    censored = np.zeros(n, bool)
    censored[rng.choice(np.arange(10, n - 10, 60), 60, replace=False)] = True
    after = rng.normal(size=(n, k))
    after[censored] = np.nan
    figure = F.carpet_plot(rng.normal(size=(n, k)), after, t_r=0.5, fd=rng.uniform(0, 0.3, n),
                           dvars_before=np.ones(n), dvars_after=np.ones(n), censored=censored)
    rasters = re.findall(rb"data:image/png;base64,([A-Za-z0-9+/=]+)", figure)
    cleaned = _rgb(base64.b64decode(rasters[-1]))  # the cleaned carpet, drawn at one raster pixel per screen pixel
    assert cleaned.shape[1] == round(F.CARPET_SIZE[0] - F.CARPET_MARGINS["left"] - F.CARPET_MARGINS["right"])
    columns = _is(cleaned, F.CENSORED, tol=0).all(axis=0)  # image columns red over the panel's whole height
    bands = int(np.count_nonzero(np.diff(np.r_[0, columns.astype(int)]) == 1))
    assert bands == 60


def test_censored_spans_merge_consecutive_volumes():
    spans = F.censored_spans(np.array([10.0, 4.0, 6.0, 12.0, 20.0]), t_r=2.0)
    np.testing.assert_allclose(spans, [[3, 7], [9, 13], [19, 21]])
    assert F.censored_spans(np.array([]), 2.0).shape == (0, 2)


def test_censored_bands_are_one_path_per_trace():
    rng = np.random.default_rng(2)
    n = 400
    censored = np.zeros(n, bool)
    censored[::3] = True
    figure = F.carpet_plot(rng.normal(size=(n, 40)), rng.normal(size=(n, 40)), t_r=1.0, fd=np.zeros(n),
                           dvars_before=np.ones(n), dvars_after=np.ones(n), censored=censored).decode()
    bands = re.findall(rf"<path d='([^']*)' fill='{F.CENSORED}'", figure)
    assert len(bands) == 2 and all(b.count("M") == censored.sum() for b in bands)


def test_run_figures_do_not_import_matplotlib():
    code = ("import sys; import numpy as np; from bidsapp.reports import figures as F; "
            "F.coverage_bars(['CIFTI_STRUCTURE_CORTEX_LEFT'], [10]); "
            "F.overlay_planes(np.ones((5, 5, 5)), np.ones((5, 5, 5)), np.eye(4)); "
            "F.carpet_plot(np.ones((9, 4)), np.ones((9, 4)), t_r=1.0, fd=np.zeros(9), dvars_before=np.ones(9), "
            "dvars_after=np.ones(9), censored=np.zeros(9, bool)); "
            "F.trial_timeline(np.ones(1), np.ones(1), ['a'], np.ones(1, bool), window=(0, 2), run_start=0, "
            "run_end=9); F.connectivity_matrix(np.eye(2), ['a', 'b']); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'PIL')))")
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert done.stdout.strip() == "[]"


def test_group_figures_do_not_import_pyplot():
    code = ("import sys; import numpy as np; from bidsapp.reports import group_figures as G; "
            "G.qcfc_histograms({'simple': np.linspace(-0.5, 0.5, 30)}); "
            "sys.exit('matplotlib.pyplot' in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_png_is_the_drawn_canvas_pixel_for_pixel():
    """The faster zlib level loses nothing: the PNG decodes to the canvas's pixels."""
    from PIL import Image

    rng = np.random.default_rng(3)
    fig, ax = G.new_figure((5, 3))
    ax.imshow(rng.normal(size=(200, 300)), cmap="gray", interpolation="nearest")
    png = G.encode(fig)
    drawn = np.asarray(fig.canvas.buffer_rgba())
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png)).convert("RGBA")), drawn)
