"""The run figures are laid out in fixed pixels and their text is drawn by the browser: every text must lie inside
its figure, and the texts of a figure must not overlap, as Chromium lays them out, on inputs with the longest
labels a run gives (coordinates to -150 mm, tiny FD values, 248,441 or 91,282 columns, long runs, long structure and
trial type names, 40 regions)."""

from __future__ import annotations

import numpy as np
import pytest

from bidsapp.reports import figures as F
from tests.browser import CHROMIUM, svg_text_boxes

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install "
                                                         "chromium); the figures' text cannot be laid out")


def _check(svg: bytes, work, *, overlaps: bool = True) -> list:
    (width, height), boxes = svg_text_boxes(svg, work)
    assert len(boxes) >= 3
    for text, left, top, right, bottom in boxes:
        assert left >= 0 and top >= 0 and right <= width + 0.5 and bottom <= height + 0.5, \
            f"{text!r} at ({left:.0f}, {top:.0f}, {right:.0f}, {bottom:.0f}) outside the {width} x {height} figure"
    if overlaps:
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                inter_w = min(a[3], b[3]) - max(a[1], b[1])
                inter_h = min(a[4], b[4]) - max(a[2], b[2])
                assert inter_w <= 1 or inter_h <= 1, f"{a[0]!r} overlaps {b[0]!r}: {a[1:]} and {b[1:]}"
    return boxes


@pytest.mark.parametrize("title", ["", "a title"])
def test_overlay_labels_stay_inside(tmp_path, title):
    shape = (151, 181, 151)  # 1 mm MNI grid: coordinates from -150 mm
    affine = np.array([[1.0, 0, 0, -75], [0, 1, 0, -150], [0, 0, 1, -72], [0, 0, 0, 1]])
    mean = np.random.default_rng(0).random(shape).astype(np.float32)
    mask = np.zeros(shape, np.int8)
    mask[20:130, 20:160, 20:130] = 1
    boxes = _check(F.overlay_planes(mean, mask, affine, title=title), tmp_path)
    assert sum(t.startswith("-1") for t, *_ in boxes) >= 2  # "-100", "-150": the widest tick labels drawn


@pytest.mark.parametrize("n, t_r, fd_scale, n_features", [(300, 2.0, 1e-4, 248441), (4000, 2.5, 3.0, 91282)])
def test_carpet_labels_stay_inside(tmp_path, n, t_r, fd_scale, n_features):
    rng = np.random.default_rng(n)
    censored = rng.random(n) < 0.05
    svg = F.carpet_plot(rng.normal(size=(n, 200)), rng.normal(size=(n, 200)), t_r=t_r, start_time=0.0,
                        fd=fd_scale * rng.random(n), dvars_before=1 + rng.random(n), dvars_after=1 + rng.random(n),
                        censored=censored, fd_threshold=fd_scale / 2, n_features=n_features)
    boxes = _check(svg, tmp_path)
    assert any(t.startswith("time (s)") for t, *_ in boxes)


def test_coverage_trial_and_connectivity_labels_stay_inside(tmp_path):
    structures = ["CIFTI_STRUCTURE_CORTEX_LEFT", "CIFTI_STRUCTURE_DIENCEPHALON_VENTRAL_RIGHT",
                  "CIFTI_STRUCTURE_CEREBELLUM_LEFT", "CIFTI_STRUCTURE_BRAIN_STEM"]
    _check(F.coverage_bars(structures, [29696, 706, 8709, 3472]), tmp_path / "bars")
    types = ["face_famous_repeated", "house", "scrambled_face_unfamiliar"]
    onsets = np.arange(6) * 40.0 + 4
    _check(F.trial_timeline(onsets, np.full(6, 3.0), [types[k % 3] for k in range(6)], np.arange(6) != 4,
                            window=(-2.0, 16.0), run_start=0.0, run_end=260.0, censored_times=[10.0],
                            t_r=2.0), tmp_path / "trials")
    rng = np.random.default_rng(1)
    names = [f"7Networks_LH_SalVentAttn_Med_{k}" for k in range(40)]
    _check(F.connectivity_matrix(np.corrcoef(rng.normal(size=(40, 80))), names), tmp_path / "matrix")


@pytest.mark.parametrize("case", ["long names", "capitals", "covariance", "tiny covariance"])
def test_long_labels_and_extreme_scales_stay_inside_without_overlap(tmp_path, case):
    """Labels a layout with fixed sizes did not expect (a red team's cases): 150-character trial types and region
    names, capital letters, colour bars of covariances from 1e-5 to 3e6."""
    rng = np.random.default_rng(2)
    if case in ("long names", "capitals"):
        types = ["x" * 150, "WORD_MEMORY_RECOGNITION_BLOCK", "MMMMMMMMMMMMMMMMMMMMMMMMM"]
        if case == "capitals":
            types = [t.upper() for t in types[1:]]
        onsets = np.arange(6) * 30.0
        _check(F.trial_timeline(onsets, np.ones(6), [types[k % len(types)] for k in range(6)], np.ones(6, bool),
                                window=(-2.0, 8.0), run_start=0.0, run_end=200.0), tmp_path / "trials")
        names = [("Right_Inferior_Frontal_Gyrus_pars_triangularis_" * 3)[:120 + k] for k in range(12)]
        _check(F.connectivity_matrix(np.corrcoef(rng.normal(size=(12, 40))), names), tmp_path / "matrix")
    else:
        scale = 3e6 if case == "covariance" else 1e-5
        m = np.cov(rng.normal(size=(8, 40))) * scale
        _check(F.connectivity_matrix(m, [f"r{k}" for k in range(8)], measure="covariance", unit="signal^2"),
               tmp_path / "matrix")


@pytest.mark.parametrize("case", ["far coordinates", "one slice"])
def test_overlay_on_unusual_grids(tmp_path, case):
    if case == "far coordinates":
        shape, affine = (40, 48, 40), np.array([[1.0, 0, 0, -1500], [0, 1, 0, -1500], [0, 0, 1, -1500], [0, 0, 0, 1]])
    else:
        shape, affine = (60, 70, 1), np.diag([3.0, 3.0, 3.0, 1.0])
    mean = np.random.default_rng(3).random(shape).astype(np.float32)
    mask = np.zeros(shape, bool)
    mask[10:30, 10:40, :] = True
    _check(F.overlay_planes(mean, mask, affine), tmp_path)


def test_carpet_structure_names_of_91k_grayordinates_do_not_overlap(tmp_path):
    """The carpet of a grayordinate run marks its 21 CIFTI structures; the small ones are a few rows of the 2,000
    shown, so only the names with room are written (every structure keeps its line)."""
    from bidsapp.demo import fslr_91k_brain_models

    bm = fslr_91k_brain_models()
    groups = [(name.removeprefix("CIFTI_STRUCTURE_").lower(), round(s.start * 2000 / len(bm)))
              for name, s, _ in bm.iter_structures()]
    assert len(groups) == 21
    n = 200
    rng = np.random.default_rng(6)
    svg = F.carpet_plot(rng.normal(size=(n, 2000)), rng.normal(size=(n, 2000)), t_r=0.72, fd=rng.random(n) * 0.2,
                        dvars_before=1 + rng.random(n), dvars_after=1 + rng.random(n), censored=np.zeros(n, bool),
                        n_features=len(bm), groups=groups)
    boxes = _check(svg, tmp_path)
    assert sum(t.strip() in {g for g, _ in groups} for t, *_ in boxes) >= 6  # the large structures are named
    assert svg.decode().count("stroke='#f6d32d'") == 2 * len(groups)


@pytest.mark.parametrize("name", ["Ж" * 12, "W" * 40, "\U0001F600" * 40, "ЖЖЖ", "cond_a\nsecond line"])
def test_wide_characters_stay_inside(tmp_path, name):
    """Capitals, Cyrillic and emoji are wider than the 0.6 em of Latin lower case (a second red team's cases)."""
    onsets = np.arange(4) * 30.0
    _check(F.trial_timeline(onsets, np.ones(4), [name, "b", name, "b"], np.ones(4, bool), window=(0.0, 8.0),
                            run_start=0.0, run_end=130.0), tmp_path / "trials")
    _check(F.connectivity_matrix(np.eye(3) + 0.1, [name, name[:5] + "x", "c"]), tmp_path / "matrix")


@pytest.mark.parametrize("shape, zooms, z0", [((64, 64, 1), (3, 3, 2), 1.0), ((64, 64, 2), (2.5, 2.5, 2.5), -3.75)])
def test_thin_slabs_label_one_tick_where_two_would_overlap(tmp_path, shape, zooms, z0):
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = [-96, -96, z0]
    mean = np.random.default_rng(4).random(shape).astype(np.float32)
    mask = np.zeros(shape, bool)
    mask[10:50, 10:50] = True
    _check(F.overlay_planes(mean, mask, affine), tmp_path)
