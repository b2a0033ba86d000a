"""Report figures: decodable images, axes labelled with units, what is drawn where it should be."""

from __future__ import annotations

import base64
import html
import io
import re

import numpy as np
import pytest

from bidsapp.reports import figures as F
from bidsapp.reports import group_figures as G


def _rasters(svg: bytes) -> list[np.ndarray]:
    """The PNG images embedded in an SVG figure, as (h, w, 3) int arrays."""
    from PIL import Image

    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(m))).convert("RGB")).astype(int)
            for m in re.findall(rb"data:image/png;base64,([A-Za-z0-9+/=]+)", svg)]


def _count(rgb: np.ndarray, colour: str, tol: int = 12) -> int:
    target = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb - target).max(axis=-1) <= tol).sum())


def _text(svg: bytes) -> str:
    """The SVG's markup with its text unescaped (each line of a text is one ``tspan``)."""
    return html.unescape(svg.decode())


def _outline_segments(svg: bytes) -> int:
    paths = re.findall(rf"<path d='([^']*)' fill='none' stroke='{F.MASK_OUTLINE}'".encode(), svg)
    return sum(p.count(b"M") for p in paths)


@pytest.fixture
def svg_text(monkeypatch):
    """matplotlib (group figures) writes SVG text as text."""
    import matplotlib

    monkeypatch.setitem(matplotlib.rcParams, "svg.fonttype", "none")


def _brain(shape=(20, 24, 18), centre=(10, 12, 9), radius=6):
    g = np.indices(shape)
    mask = sum((g[i] - centre[i]) ** 2 for i in range(3)) <= radius ** 2
    rng = np.random.default_rng(0)
    mean = np.where(mask, 800 + 50 * rng.random(shape), 20.0)
    return mean, mask


def test_mask_outline_is_red_and_slices_go_through_the_mask():
    mean, mask = _brain(centre=(6, 12, 9))
    affine = np.diag([3.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = [-30, -36, -36]
    svg = F.overlay_planes(mean, mask, affine, kind="mask")
    assert _outline_segments(svg) > 30  # the outline, along the voxels' edges, in each plane
    assert len(_rasters(svg)) == 3 and all(_count(r, "#ff3b30", tol=40) == 0 for r in _rasters(svg))
    no_mask = F.overlay_planes(mean, np.zeros_like(mask), affine, kind="mask")
    assert _outline_segments(no_mask) == 0
    text = _text(svg)
    # the cut is the mask's centre, in mm: x = -30 + 3 * 6
    assert "sagittal, x = -12 mm" in text and "coronal, y = 0 mm" in text and "axial, z = 0 mm" in text
    for label in ("x (mm)", "y (mm)", "z (mm)"):
        assert label in text


@pytest.mark.parametrize("kind", ["labels", "maps", "spheres"])
def test_atlas_kinds_are_coloured(kind):
    mean, mask = _brain()
    if kind == "labels":
        overlay = np.where(mask, 1 + (np.indices(mask.shape)[0] > 10), 0)
    else:
        overlay = np.stack([mask & (np.indices(mask.shape)[0] <= 10), mask & (np.indices(mask.shape)[0] > 10)],
                           axis=-1).astype(float)
    coloured = np.concatenate([r.reshape(-1, 3) for r in _rasters(F.overlay_planes(mean, overlay, np.eye(4),
                                                                                   kind=kind))])
    bare = np.concatenate([r.reshape(-1, 3) for r in
                           _rasters(F.overlay_planes(mean, np.zeros_like(overlay), np.eye(4), kind=kind))])
    cut = F._cut(overlay)
    labelled = sum(int((F._labels_of(overlay, a, cut[a], kind) != 0).sum()) for a in range(3))
    assert labelled > 100
    assert int((coloured != bare).any(axis=-1).sum()) == labelled  # every labelled voxel of the planes, no other


def test_overlay_refuses_another_grid():
    mean, mask = _brain()
    with pytest.raises(ValueError, match="not on the mean image's grid"):
        F.overlay_planes(mean, mask[:-1], np.eye(4))
    with pytest.raises(ValueError, match="kind 'blob'"):
        F.overlay_planes(mean, mask, np.eye(4), kind="blob")


def _carpet(n=80, k=300, censored=()):
    rng = np.random.default_rng(1)
    before = rng.normal(size=(n, k))
    after = rng.normal(size=(n, k))
    cens = np.zeros(n, bool)
    cens[list(censored)] = True
    after[cens] = np.nan
    fd = np.r_[np.nan, rng.uniform(0, 0.4, n - 1)]
    dv = np.r_[np.nan, rng.uniform(0.8, 1.3, n - 1)]
    return dict(before=before, after=after, fd=fd, dvars_before=dv, dvars_after=dv * 0.9, censored=cens)


def test_carpet_marks_censored_volumes_and_labels_units():
    plain = F.carpet_plot(t_r=2.0, **_carpet())
    marked = F.carpet_plot(t_r=2.0, **_carpet(censored=[0, 1, 30, 31, 32]))
    assert sum(_count(r, F.CENSORED, tol=0) for r in _rasters(plain)) == 0 and F.CENSORED not in plain.decode()
    before, after = _rasters(marked)
    assert _count(before, F.CENSORED, tol=0) == 0 and _count(after, F.CENSORED, tol=0) == 5 * after.shape[0]
    assert marked.decode().count(f"fill='{F.CENSORED}'") == 2  # one path of bands on each trace panel
    text = _text(F.carpet_plot(t_r=2.0, start_time=1.0, fd_threshold=0.5, n_features=250_000,
                               groups=[("cortex left", 0), ("thalamus", 150)], **_carpet()))
    for label in ("FD (mm)", "std. DVARS", "time (s)", "before cleaning", "after cleaning", "300 of 250000",
                  "threshold 0.5 mm", "thalamus"):
        assert label in text


def test_carpet_refuses_traces_of_another_length():
    c = _carpet()
    c["fd"] = c["fd"][:-1]
    with pytest.raises(ValueError, match="must share 80 volumes"):
        F.carpet_plot(t_r=2.0, **c)


def test_trial_timeline_colours_valid_and_invalid_trials():
    args = dict(window=(-2.0, 16.0), run_start=1.0, run_end=201.0, censored_times=[1.0, 3.0], t_r=2.0)
    onsets, durations = np.array([10.0, 40.0, 70.0, 190.0]), np.full(4, 2.0)
    types = ["face", "house", "face", "house"]
    all_valid = F.trial_timeline(onsets, durations, types, np.ones(4, bool), **args).decode()
    one_bad = F.trial_timeline(onsets, durations, types, np.array([1, 1, 1, 0], bool), **args).decode()
    assert "#c01c28" not in all_valid and one_bad.count("fill='#c01c28'") == 2  # the event and its window
    assert all_valid.count("fill='#26a269'") == 2
    text = _text(F.trial_timeline(onsets, durations, types, np.ones(4, bool), **args))
    assert "time from the first stored volume (s)" in text and "face" in text and "house" in text
    with pytest.raises(ValueError, match="must match"):
        F.trial_timeline(onsets, durations[:3], types, np.ones(4, bool), **args)


def test_connectivity_and_group_figures(svg_text):
    rng = np.random.default_rng(2)
    m = np.corrcoef(rng.normal(size=(12, 60)))
    text = _text(F.connectivity_matrix(m, [f"region{i}" for i in range(12)]))
    assert "region11" in text and "correlation (Pearson r)" in text
    with pytest.raises(ValueError, match="square matrix"):
        F.connectivity_matrix(m[:, :5], ["a"] * 12)
    qcfc = {"simple": rng.normal(0.2, 0.1, 300), "scrubbing": rng.normal(0.0, 0.1, 300)}
    text = _text(G.qcfc_histograms(qcfc, fmt="svg"))
    assert "QC-FC (Pearson r, edge vs mean FD)" in text and "scrubbing" in text and "edges" in text
    dist = rng.uniform(10, 150, 300)
    text = _text(G.distance_dependence({k: (dist, v) for k, v in qcfc.items()}, fmt="svg"))
    assert "distance between region centroids (mm)" in text
    from scipy.stats import spearmanr

    rho = spearmanr(dist, qcfc["simple"])[0]
    assert f"Spearman rho(distance, QC-FC) = {rho:.3f}" in text
    text = _text(F.coverage_bars(["CIFTI_STRUCTURE_CORTEX_LEFT", "CIFTI_STRUCTURE_THALAMUS_RIGHT"], [29696, 1288]))
    assert "cortex left" in text and "thalamus right" in text and "grayordinates" in text


def test_figures_are_reproducible_bytes():
    mean, mask = _brain()
    assert F.overlay_planes(mean, mask, np.eye(4)) == F.overlay_planes(mean, mask, np.eye(4))


def test_slices_go_through_separate_pieces():
    """Two spheres apart: the planes pass through one of them, not through the empty middle."""
    mean, _ = _brain()
    spheres = np.zeros(mean.shape + (2,))
    spheres[2:4, 2:4, 2:4, 0] = 1
    spheres[14:16, 18:20, 12:14, 1] = 1
    text = _text(F.overlay_planes(mean, spheres, np.eye(4), kind="spheres"))
    assert "sagittal, x = 3 mm" in text or "sagittal, x = 14 mm" in text


def test_dominant_map_ignores_faint_tails(tmp_path):
    import nibabel as nib

    from bidsapp.reports.run_report import dominant_map

    maps = np.zeros((5, 5, 5, 2), np.float32)
    maps[..., 0] = 0.01  # a faint tail everywhere (1 % of its peak)
    maps[1, 1, 1, 0] = 1.0
    maps[3, 3, 3, 1] = 2.0
    nib.save(nib.Nifti1Image(maps, np.eye(4)), tmp_path / "maps.nii.gz")
    label = dominant_map(tmp_path / "maps.nii.gz")
    assert label[1, 1, 1] == 1 and label[3, 3, 3] == 2 and (label > 0).sum() == 2


@pytest.mark.parametrize("bad", ["\x0b", "\x0c", "\x00", "\ud800", "\ufffe"])
def test_names_with_characters_xml_forbids_still_give_a_valid_figure(bad):
    """A trial type or region name holding a control character (a typo in events.tsv) must not make the SVG
    unreadable (a broken image with no error): it is drawn as U+FFFD (a vertical tab or form feed, which Python
    counts as line breaks, as a space: a name is one line)."""
    import xml.etree.ElementTree as ET

    types = [f"face{bad}fearful", "house"]
    timeline = F.trial_timeline(np.array([2.0, 9.0]), np.ones(2), types, np.ones(2, bool), window=(0.0, 4.0),
                                run_start=0.0, run_end=20.0)
    matrix = F.connectivity_matrix(np.eye(2), [f"left{bad}back", "right"])
    for svg, name in ((timeline, "face{}fearful"), (matrix, "left{}back")):
        text = "".join(ET.fromstring(svg).itertext())  # valid XML
        shown = name.format(" " if bad in "\x0b\x0c" else "\ufffd")  # line breaks of str.splitlines: one line
        assert shown in text


def test_tiny_and_huge_scales_keep_distinct_tick_labels():
    from bidsapp.reports import svg

    for lo, hi in ((0.0, 3e-10), (-2e-5, 2e-5), (0.0, 4.2e6), (-3e7, 3e7)):
        labels = svg.tick_labels(svg.nice_ticks(lo, hi, 5))
        assert len(labels) >= 2 and len(set(labels)) == len(labels), labels


def test_missing_mean_image_values_are_white_not_black():
    mean, mask = _brain()
    mean = np.where(mask, mean, np.nan).astype(np.float32)
    planes = _rasters(F.overlay_planes(mean, mask, np.eye(4)))
    cut = F._cut(mask)
    missing = [int(np.isnan(np.take(mean, cut[a], axis=a)).sum()) for a in range(3)]
    assert min(missing) > 50
    for axis, rgb in enumerate(planes):  # each plane is drawn transposed, its last row at the top
        nan = np.isnan(np.take(mean, cut[axis], axis=axis)).T[::-1]
        assert (rgb[nan] == 255).all()


def test_dvars_traces_stay_in_their_panel_when_every_volume_is_censored():
    n = 30
    rng = np.random.default_rng(5)
    dv = np.r_[np.nan, rng.uniform(1, 2, n - 1)]
    svg = F.carpet_plot(rng.normal(size=(n, 20)), np.full((n, 20), np.nan), t_r=2.0, fd=np.zeros(n),
                        dvars_before=dv, dvars_after=dv, censored=np.ones(n, bool)).decode()
    (y0, h0), (y1, h1) = svg_rows()[:2]
    for colour in ("#813d9c", "#26a269"):
        d = re.search(rf"<path d='([^']*)' fill='none' stroke='{colour}'", svg).group(1)
        ys = [float(v.split()[1]) for v in re.split("[ML]", d) if v]
        assert min(ys) >= y1 - 0.5 and max(ys) <= y1 + h1 + 0.5


def svg_rows():
    from bidsapp.reports import svg

    m = F.CARPET_MARGINS
    return svg.rows_layout(m["top"], F.CARPET_SIZE[1] - m["bottom"], F.CARPET_HEIGHTS, m["gap"])


def test_trial_timeline_marks_each_censored_volume_at_least_a_pixel_wide():
    """An HCP-like run (TR 0.72 s, 1,200 volumes): an isolated censored volume is 0.7 px wide on the timeline."""
    t_r, n = 0.72, 1200
    censored = np.arange(20, n, 40) * t_r
    svg = F.trial_timeline(np.array([10.0, 400.0]), np.ones(2), ["a", "b"], np.ones(2, bool), window=(0.0, 10.0),
                           run_start=0.0, run_end=n * t_r, censored_times=censored, t_r=t_r).decode()
    d = re.search(rf"<path d='([^']*)' fill='{F.CENSORED}'", svg).group(1)
    widths = [float(part.split("h")[1].split("v")[0]) for part in d.split("M")[1:]]
    assert len(widths) == censored.size and min(widths) >= 1.0


def test_shortened_names_that_share_a_long_prefix_stay_apart():
    from bidsapp.reports import svg

    a, b = "feedback_after_reward_anticipation_cond_1", "feedback_after_reward_anticipation_cond_2"
    assert svg.shorten(a) != svg.shorten(b) and len(svg.shorten(a)) == 40 and svg.shorten("short") == "short"


def test_matrix_with_infinite_or_huge_values_is_drawn():
    for value in (np.inf, -np.inf, 1e308, np.nan):
        m = np.array([[1.0, value, 0.2], [value, 1.0, -0.3], [0.2, -0.3, 1.0]])
        assert F.connectivity_matrix(m, ["a", "b", "c"]).startswith(b"<svg")
    svg_m = F.connectivity_matrix(np.array([[1.0, 1e308], [1e308, 1.0]]), ["a", "b"])
    assert svg_m.startswith(b"<svg")


def test_tick_labels_of_a_tiny_span_far_from_zero_stay_distinct():
    from bidsapp.reports import svg

    for lo, hi in ((1e7, 1e7 + 5), (1.0, 1.0 + 5e-7)):
        labels = svg.tick_labels(svg.nice_ticks(lo, hi, 5))
        assert len(labels) >= 2 and len(set(labels)) == len(labels), labels
