"""The overlay planes and the carpet plot are laid out with fixed margins (no ``tight_layout``, which cost 0.1-0.15 s
of CPU per figure): every text of the figure must still lie inside it, on inputs with the longest labels a run
gives (coordinates to -150 mm, tiny FD values, 91,282 columns, long runs)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bidsapp.reports import figures as F


def _texts_inside(fig) -> None:
    """Each axes' tight box (its drawn tick labels, axis labels, title, legend) and the figure's texts lie inside
    the figure."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.canvas.get_width_height()
    boxes = [(f"axes {k}", ax.get_tightbbox(renderer)) for k, ax in enumerate(fig.axes)]
    boxes += [(t.get_text(), t.get_window_extent(renderer)) for t in fig.texts if t.get_text()]
    assert len(boxes) >= 3
    for what, box in boxes:
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height, \
            f"{what} at {box} outside the {width} x {height} px figure"


def _keep(monkeypatch) -> list:
    figures = []
    real = F.encode

    def encode(fig, fmt="png"):
        figures.append(fig)
        return real(fig, fmt)

    monkeypatch.setattr(F, "encode", encode)
    return figures


@pytest.mark.parametrize("title", ["", "a title"])
def test_overlay_labels_stay_inside(monkeypatch, title):
    figures = _keep(monkeypatch)
    shape = (151, 181, 151)  # 1 mm MNI grid: coordinates from -150 mm
    affine = np.array([[1.0, 0, 0, -75], [0, 1, 0, -150], [0, 0, 1, -72], [0, 0, 0, 1]])
    mean = np.random.default_rng(0).random(shape).astype(np.float32)
    mask = np.zeros(shape, np.int8)
    mask[20:130, 20:160, 20:130] = 1
    F.overlay_planes(mean, mask, affine, title=title)
    _texts_inside(figures[0])


@pytest.mark.parametrize("n, t_r, fd_scale, n_features", [(300, 2.0, 1e-4, 248441), (4000, 2.5, 3.0, 91282)])
def test_carpet_labels_stay_inside(monkeypatch, n, t_r, fd_scale, n_features):
    figures = _keep(monkeypatch)
    rng = np.random.default_rng(n)
    censored = rng.random(n) < 0.05
    png = F.carpet_plot(rng.normal(size=(n, 200)), rng.normal(size=(n, 200)), t_r=t_r, start_time=0.0,
                        fd=fd_scale * rng.random(n), dvars_before=1 + rng.random(n), dvars_after=1 + rng.random(n),
                        censored=censored, fd_threshold=fd_scale / 2, n_features=n_features,
                        groups=[("cortex_left", 0), ("cortex_right", 100)])
    _texts_inside(figures[0])
    image = Image.open(io.BytesIO(png))
    assert image.size == (1056, 816) and image.mode == "RGB"  # opaque: stored without its alpha channel
