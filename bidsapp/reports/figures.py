"""Run figures of the participant page: pure functions from arrays to SVG bytes.

Each function takes arrays and explicit arguments (no file, no settings) and returns a standalone SVG document
(:mod:`bidsapp.reports.svg`): images (the mean image's planes, the carpets, a connectivity matrix) are embedded
PNGs at their own resolution, drawn with square pixels, and the browser draws the lines and the text. Every
axis names its quantity and unit. Group figures are :mod:`bidsapp.reports.group_figures`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bidsapp.reports import svg
from bidsapp.reports.svg import LABEL, SMALL, TICK, Figure

#: colour of censored volumes (traces and the NaN rows of the carpet)
CENSORED = "#e8a09a"
MASK_OUTLINE = "#ff3b30"
#: matplotlib's ``tab20`` (atlas labels, label % 20), blended over the mean image at :data:`LABEL_ALPHA`
TAB20 = ("#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896", "#9467bd",
         "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7", "#bcbd22", "#dbdb8d",
         "#17becf", "#9edae5")
LABEL_ALPHA = 0.55
#: ColorBrewer RdBu (11 classes), reversed: negative blue, positive red (matplotlib's ``RdBu_r``)
RDBU_R = ("#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582", "#d6604d",
          "#b2182b", "#67001f")


def _ramp(values: np.ndarray, anchors: Sequence[str], vmin: float, vmax: float) -> np.ndarray:
    """Values through a colour ramp linear between ``anchors`` (NaN white): (..., 3) uint8."""
    table = np.array([svg.hex_rgb(c) for c in anchors], float)
    with np.errstate(invalid="ignore"):
        pos = np.clip((np.asarray(values, float) - vmin) / ((vmax - vmin) or 1.0), 0, 1) * (len(anchors) - 1)
    nan = np.isnan(pos)
    pos = np.where(nan, 0, pos)
    lo = np.minimum(pos.astype(int), len(anchors) - 2)
    frac = (pos - lo)[..., None]
    rgb = np.rint(table[lo] * (1 - frac) + table[lo + 1] * frac).astype(np.uint8)
    rgb[nan] = 255
    return rgb


# --- columns over the run's mean image ----------------------------------------------------------------------

PLANES = (("sagittal", 0, ("y", "z")), ("coronal", 1, ("x", "z")), ("axial", 2, ("x", "y")))
#: the overlay figure (px) and its margins (px; the top one grows by 29 px for a title): tick labels of at most
#: 4 characters ("-100"), one line of title and axis label; each plane keeps its aspect ratio inside its cell
OVERLAY_SIZE = (1056, 365)
OVERLAY_MARGINS = {"left": 72, "right": 14, "bottom": 58, "top": 34, "gap": 76}


def _extent(affine: np.ndarray, shape: Sequence[int], axes: tuple[int, int]) -> list[float]:
    """Extent (mm: left, right, bottom, top) of a slice spanned by two voxel axes: the world coordinate each axis
    mostly follows (exact for the axis-aligned grids of fMRIPrep outputs; oblique grids are shown on their voxel
    axes)."""
    ext = []
    for ax in axes:
        world = int(np.argmax(np.abs(affine[:3, ax])))
        step = affine[world, ax]
        ext += [affine[world, 3] - step / 2, affine[world, 3] + step * (shape[ax] - 0.5)]
    return ext


def _cut(overlay: np.ndarray) -> tuple[int, int, int]:
    """Voxel of the slices: the voxel of the overlay nearest its centre of mass, so that each plane passes
    through the overlay even when it is made of separate pieces (spheres)."""
    support = overlay if overlay.ndim == 3 else (overlay != 0).any(axis=3)
    idx = np.argwhere(support != 0)
    if idx.size == 0:
        return tuple(s // 2 for s in overlay.shape[:3])
    nearest = idx[np.argmin(((idx - idx.mean(axis=0)) ** 2).sum(axis=1))]
    return tuple(int(v) for v in nearest)


def _labels_of(overlay: np.ndarray, axis: int, index: int, kind: str) -> np.ndarray:
    """A 2D integer image for one plane: the mask (1), the atlas labels, or for maps and spheres (4D) the
    1-based index of the map with the largest value (0 where every map is 0)."""
    sl = np.take(overlay, index, axis=axis)
    if kind == "mask":
        return (sl > 0).astype(int)
    if overlay.ndim == 3:
        return np.rint(sl).astype(int)
    top = np.abs(sl).max(axis=-1)
    return np.where(top > 0, np.argmax(np.abs(sl), axis=-1) + 1, 0)


def outline(inside: np.ndarray) -> np.ndarray:
    """The boundary of a 2D boolean image along its pixels' edges, as segments ``(r0, c0, r1, c1)`` in pixel
    corner coordinates (row, column), collinear neighbouring edges merged."""
    p = np.pad(np.asarray(inside, bool), 1)
    out = []
    for edges, transposed in ((p[1:, 1:-1] != p[:-1, 1:-1], False), ((p[1:-1, 1:] != p[1:-1, :-1]).T, True)):
        d = np.diff(np.pad(edges, ((0, 0), (1, 1))).astype(np.int8), axis=1)
        starts, ends = np.argwhere(d == 1), np.argwhere(d == -1)  # row-major: the k-th start pairs the k-th end
        seg = np.column_stack([starts[:, 0], starts[:, 1], starts[:, 0], ends[:, 1]])
        out.append(seg[:, [1, 0, 3, 2]] if transposed else seg)
    return np.concatenate(out)


def _plane_image(mean_slice: np.ndarray, lab: np.ndarray, kind: str, lo: float, hi: float) -> np.ndarray:
    """RGB of one plane (rows = the slice's second axis, bottom row last): grey mean image, labels blended."""
    rgb = svg.grey(mean_slice.T[::-1], lo, hi, bad="#ffffff")  # NaN: no data, as the page's background
    if kind != "mask":
        shown = lab.T[::-1]
        on = shown != 0
        colours = np.array([svg.hex_rgb(c) for c in TAB20], float)[shown[on] % 20]
        rgb[on] = np.rint(rgb[on] * (1 - LABEL_ALPHA) + colours * LABEL_ALPHA).astype(np.uint8)
    return rgb


def _plane_axes(fig: Figure, cell: tuple[float, float, float, float], ext: list[float]) -> svg.Axes:
    """Axes in a cell keeping the slice's aspect ratio (1 mm = 1 mm on both axes), centred."""
    x, y, w, h = cell
    ew, eh = abs(ext[1] - ext[0]), abs(ext[3] - ext[2])
    scale = min(w / ew, h / eh)
    bw, bh = ew * scale, eh * scale
    return fig.add_axes((x + (w - bw) / 2, y + (h - bh) / 2, bw, bh), ext[:2], ext[2:])


def overlay_planes(mean: np.ndarray, overlay: np.ndarray, affine: np.ndarray, *, kind: str = "mask",
                   title: str = "") -> bytes:
    """The mask (or atlas, maps, spheres) over the run's mean image, in three planes through its centre.

    Parameters
    ----------
    mean : numpy.ndarray, shape (nx, ny, nz)
        The run's mean image.
    overlay : numpy.ndarray, shape (nx, ny, nz) or (nx, ny, nz, n_maps)
        ``kind="mask"``: the mask (> 0 inside), drawn as its outline along the voxels' edges; ``"labels"``:
        integer labels (0 = background), each a colour; ``"maps"`` / ``"spheres"``: one volume per map, each voxel
        coloured by the map with the largest absolute value.
    affine : numpy.ndarray, shape (4, 4)
        Voxel to world (mm) of both images; axes are labelled in mm.
    kind : {"mask", "labels", "maps", "spheres"}
    title : str

    Returns
    -------
    bytes
        An SVG document.
    """
    if kind not in ("mask", "labels", "maps", "spheres"):
        raise ValueError(f"overlay_planes: kind {kind!r} is not one of mask, labels, maps, spheres")
    if mean.ndim != 3 or overlay.shape[:3] != mean.shape:
        raise ValueError(f"overlay_planes: overlay of shape {overlay.shape} is not on the mean image's grid "
                         f"{mean.shape}")
    cut = _cut(overlay)
    inside = mean[np.isfinite(mean) & (mean != 0)]
    lo, hi = np.percentile(inside, [2, 98]) if inside.size else (0.0, 1.0)
    (width, height), m = OVERLAY_SIZE, OVERLAY_MARGINS
    top = m["top"] + (29 if title else 0)
    fig = Figure(width, height + (29 if title else 0))
    extents = [_extent(affine, mean.shape, tuple(a for a in range(3) if a != axis)) for _, axis, _ in PLANES]
    tick_width = max(svg.y_tick_width(e[2], e[3], fig.height - top - m["bottom"]) for e in extents)
    left = max(m["left"], svg.ylabel_offset(tick_width) + 12)  # room for long coordinates (-1500 mm)
    gap = max(m["gap"], left + 4)
    cell_w = (width - left - m["right"] - 2 * gap) / 3
    world = affine[:3] @ np.r_[cut, 1]
    for k, ((name, axis, (u, v)), ext) in enumerate(zip(PLANES, extents)):
        ax = _plane_axes(fig, (left + k * (cell_w + gap), top, cell_w, fig.height - top - m["bottom"]), ext)
        lab = _labels_of(overlay, axis, cut[axis], kind)
        ax.image(_plane_image(np.take(mean, cut[axis], axis=axis), lab, kind, lo, hi),
                 (ext[0], ext[1], ext[3], ext[2]))
        if kind == "mask":
            seg = outline(lab.T)  # rows: the second axis (up), columns: the first (across)
            xs, ys = ax.px(ext[0] + (ext[1] - ext[0]) * seg[:, [1, 3]] / lab.shape[0],
                           ext[2] + (ext[3] - ext[2]) * seg[:, [0, 2]] / lab.shape[1])
            ax.path("".join(f"M{a:.1f} {b:.1f}L{c:.1f} {d:.1f}" for (a, c), (b, d) in zip(xs, ys)),
                    MASK_OUTLINE, 1.6)
        ax.title(f"{name}, {'xyz'[axis]} = {world[axis]:.0f} mm")
        ax.xticks()
        ax.yticks()
        ax.xlabel(f"{u} (mm)")
        ax.ylabel(f"{v} (mm)")
    if title:
        fig.text(width / 2, 18, title, size=14.7, anchor="middle")
    return fig.encode()


def coverage_bars(structures: Sequence[str], counts: Sequence[int], *, title: str = "") -> bytes:
    """Grayordinate runs (no volume to draw on): the columns per CIFTI structure, as horizontal bars.

    Parameters
    ----------
    structures : sequence of str
        Structure names (``CIFTI_STRUCTURE_CORTEX_LEFT`` ...); the prefix is dropped in the labels.
    counts : sequence of int
        Columns (grayordinates) of the run in each structure.
    """
    if len(structures) != len(counts):
        raise ValueError(f"coverage_bars: {len(structures)} structures but {len(counts)} counts")
    names = [s.removeprefix("CIFTI_STRUCTURE_").replace("_", " ").lower() for s in structures]
    n = len(names)
    left = 16 + max([svg.text_width(s, SMALL) for s in names], default=26.0)
    fig = Figure(768, 21 * n + 116)
    top_count = max(max(counts, default=0), 1)
    ax = fig.add_axes((left, 34, 768 - left - 20, 21 * n + 24), (0, 1.15 * top_count), (n - 0.5, -0.5))
    rows = np.arange(n)
    ax.rects(np.zeros(n), rows - 0.4, np.asarray(counts, float), rows + 0.4, "#1a5fb4")
    for y, c in zip(rows, counts):
        ax.note(c, y, f" {c}", size=SMALL - 1, baseline="middle")
    ax.yticks(rows, names, size=SMALL)
    ax.xticks()
    ax.xlabel("columns of the run (grayordinates)")
    ax.title(title or "grayordinates per structure")
    return fig.encode()


# --- carpet plot ----------------------------------------------------------------------------------------------

def censored_spans(times: np.ndarray, t_r: float) -> np.ndarray:
    """Censored volumes as time spans (s), consecutive volumes merged: one ``(start, end)`` row per run of
    volumes, each volume ``t - t_r / 2`` to ``t + t_r / 2``, so the spans cover exactly the union of the
    volumes' bands.

    Parameters
    ----------
    times : numpy.ndarray, shape (n_censored,)
        Times (s) of the censored volumes.
    t_r : float
        Repetition time (s): the width of each volume's band; volumes one ``t_r`` apart are consecutive.
    """
    t = np.sort(np.asarray(times, dtype=float))
    if not t.size:
        return np.empty((0, 2))
    first = np.r_[True, np.diff(t) > 1.5 * t_r]
    last = np.r_[first[1:], True]
    return np.column_stack([t[first] - t_r / 2, t[last] + t_r / 2])


def carpet_pixels(data: np.ndarray, width: int, height: int) -> np.ndarray:
    """A carpet's image reduced to the pixels it is drawn on, with its NaN marks kept.

    The volumes (columns) are split into ``width`` (``height``) equal bins, one per pixel, and each pixel takes
    the sample at the middle of its bin: one real sample per pixel, as nearest-neighbour drawing of the whole
    carpet shows (the same texture and grey levels; not averaged, which would flatten the noise to grey).
    A pixel whose bin holds any NaN sample is NaN: a censored volume or a column without data stays visible
    however many volumes or columns share one pixel, where sampling drops most of them.

    Parameters
    ----------
    data : numpy.ndarray, shape (n_volumes, n_columns)
    width, height : int
        Pixels the image is drawn on (>= 1): volumes across, columns down. An axis with no more samples than
        pixels is kept as it is.

    Returns
    -------
    numpy.ndarray, shape (min(n_columns, height), min(n_volumes, width)), float32
        The image (columns as rows, volumes as image columns).
    """
    out = np.asarray(data, dtype=np.float32)
    for axis, pixels in ((0, width), (1, height)):  # volumes first: rows of a C-ordered array, gathered fast
        n = out.shape[axis]
        if n <= pixels:
            continue
        centre = ((np.arange(pixels) + 0.5) * n / pixels).astype(np.intp)
        first = np.searchsorted((np.arange(n) + 0.5) * pixels / n, np.arange(pixels))  # first sample of a pixel
        holes = np.logical_or.reduceat(np.isnan(out), first, axis=axis)
        out = np.take(out, centre, axis=axis)
        out[holes] = np.nan
    return out.T


def _upper(values: Sequence[np.ndarray | float]) -> float:
    """Upper y limit of a trace panel: 1.1 x the largest finite value (1 when there is none)."""
    finite = np.concatenate([np.ravel(np.asarray(v, float)) for v in values])
    finite = finite[np.isfinite(finite)]
    top = float(finite.max()) if finite.size else 0.0
    return 1.1 * top if top > 0 else 1.0


def _traces(axes: list[svg.Axes], times: np.ndarray, fd: np.ndarray, dvars_before: np.ndarray,
            dvars_after: np.ndarray, fd_threshold: float | None, offset: float) -> None:
    """The framewise displacement and standardized DVARS panels (y labels ``offset`` px left of the axes)."""
    axes[0].line(times, fd, "#1a5fb4")
    if fd_threshold is not None:
        axes[0].hline(fd_threshold, "#c01c28", 0.8, dash="5 3")
        axes[0].legend([(f"threshold {fd_threshold:g} mm", "#c01c28", "5 3")])
    axes[0].ylabel("FD (mm)", offset=offset)
    axes[1].line(times, dvars_before, "#813d9c")
    axes[1].line(times, dvars_after, "#26a269")
    axes[1].legend([("before cleaning", "#813d9c", ""), ("after cleaning", "#26a269", "")])
    axes[1].ylabel("std. DVARS\n(ratio, 1 = expected)", offset=offset)


def _groups(ax: svg.Axes, groups: Sequence[tuple[str, int]], x: float) -> None:
    """Named groups of carpet rows: a line at each group's first row, and its name where it does not overlap
    the previous name drawn (small CIFTI structures are a few rows of a 2,000-row carpet)."""
    for _, row in groups:
        ax.hline(row, "#f6d32d", 0.6)
    ys = np.atleast_1d(ax.px(0, [row for _, row in groups])[1])
    for k in svg.spaced(ys, [5.0] * len(groups)):
        name, row = groups[k]
        ax.note(x, row, f" {name}", size=8.0, colour="#f6d32d", baseline="hanging")


#: the carpet figure (px) and its margins (px): two-line y labels beside tick labels of up to 6 characters
#: ("0.0125" mm), the time axis' label and tick labels below
CARPET_SIZE = (1056, 816)
CARPET_MARGINS = {"left": 96, "right": 29, "bottom": 58, "top": 19, "gap": 28}
CARPET_HEIGHTS = (1, 1, 2.4, 2.4)


def carpet_plot(before: np.ndarray, after: np.ndarray, *, t_r: float, start_time: float = 0.0,
                fd: np.ndarray, dvars_before: np.ndarray, dvars_after: np.ndarray, censored: np.ndarray,
                fd_threshold: float | None = None, n_features: int | None = None,
                groups: Sequence[tuple[str, int]] = ()) -> bytes:
    """Carpet plot before and after cleaning, under framewise displacement and standardized DVARS traces.

    The carpets are reduced to the pixels they are drawn on first (:func:`carpet_pixels`): a 2,000 x 4,000
    carpet is drawn as the ~930 x 230 pixels a reader sees, with every censored volume still marked.

    Parameters
    ----------
    before, after : numpy.ndarray, shape (n_volumes, n_columns)
        The same columns before and after cleaning, z-scored per column; ``after`` is NaN on censored volumes.
    t_r, start_time : float
        Seconds; the x axis is ``start_time + volume * t_r``.
    fd : numpy.ndarray, shape (n_volumes,)
        Framewise displacement (mm; NaN where unknown).
    dvars_before, dvars_after : numpy.ndarray, shape (n_volumes,)
        Standardized DVARS (NaN where undefined).
    censored : numpy.ndarray, shape (n_volumes,), bool
        Volumes left out of the cleaned array (shaded; their rows of ``after`` are drawn in the same colour).
    fd_threshold : float, optional
        The censoring threshold (mm), drawn as a dashed line.
    n_features : int, optional
        Columns of the run (the carpet shows a subsample of them), for the y label.
    groups : sequence of (str, int)
        Named groups of consecutive carpet rows (e.g. CIFTI structures): name and first row, marked on the y axis.

    Returns
    -------
    bytes
        An SVG document.
    """
    n, k = before.shape
    censored = np.asarray(censored, dtype=bool)
    if after.shape != (n, k) or any(np.shape(a) != (n,) for a in (fd, dvars_before, dvars_after, censored)):
        raise ValueError(f"carpet_plot: before {before.shape}, after {after.shape}, and traces of "
                         f"{[np.shape(a) for a in (fd, dvars_before, dvars_after, censored)]} must share "
                         f"{n} volumes")
    times = start_time + np.arange(n) * t_r
    xlim = (times[0] - t_r / 2, times[-1] + t_r / 2)
    (width, height), m = CARPET_SIZE, CARPET_MARGINS
    fig = Figure(width, height)
    kept = [np.asarray(d)[~censored] for d in (dvars_before, dvars_after)]
    shown = kept if np.isfinite(np.concatenate(kept)).any() else [dvars_before, dvars_after]
    ylims = [(0, _upper([fd, [fd_threshold or 0]])), (0, _upper(shown)), (k, 0), (k, 0)]
    rows = svg.rows_layout(m["top"], height - m["bottom"], CARPET_HEIGHTS, m["gap"])
    tick_width = max(svg.y_tick_width(lo, hi, h) for (lo, hi), (_, h) in zip(ylims, rows))
    offset = svg.ylabel_offset(tick_width, 2)  # the same for every panel: the labels line up
    left = max(m["left"], offset + 22)
    axes = [fig.add_axes((left, y, width - left - m["right"], h), xlim, ylim) for (y, h), ylim in zip(rows, ylims)]
    spans = censored_spans(times[censored], t_r)
    for ax in axes[:2]:
        ax.bands(spans, CENSORED, min_px=1.0)
    _traces(axes, times, fd, dvars_before, dvars_after, fd_threshold, offset)
    for ax, data, what in ((axes[2], before, "before cleaning"), (axes[3], after, "after cleaning")):
        image = carpet_pixels(data, max(1, round(ax.w)), max(1, round(ax.h)))
        ax.image(svg.grey(image, -2.0, 2.0, bad=CENSORED))
        ax.ylabel(f"{what}\ncolumns ({k}" + (f" of {n_features})" if n_features else ")"), offset=offset)
        _groups(ax, groups, xlim[0])
    for ax in axes:
        ax.xticks(show=ax is axes[-1])
        ax.yticks()
    axes[-1].xlabel("time (s); red: censored volumes (in the carpet also columns without data); carpet: "
                    "z-scored signal, grey scale -2 to 2 SD", offset=22)
    return fig.encode()


# --- trial timeline -------------------------------------------------------------------------------------------

def trial_timeline(onsets: np.ndarray, durations: np.ndarray, trial_types: Sequence[str], valid: np.ndarray, *,
                   window: tuple[float, float], run_start: float, run_end: float,
                   censored_times: Sequence[float] = (), t_r: float = 0.0) -> bytes:
    """Events on one row per trial type: the event (dark bar), its trial window (light bar), valid trials in
    green and invalid ones in red, censored volumes as bands, and the acquired run.

    Parameters
    ----------
    onsets, durations : numpy.ndarray, shape (n_trials,)
        Seconds, from the first stored volume (as events.tsv).
    trial_types : sequence of str, length n_trials
    valid : numpy.ndarray, shape (n_trials,), bool
    window : (float, float)
        The trial window in seconds from each onset.
    run_start, run_end : float
        Times (s) of the first volume and of the end of the last one.
    censored_times, t_r : numpy.ndarray, float
        Times (s) of the censored volumes and the repetition time (band width).
    """
    onsets, durations, valid = (np.asarray(a, float) for a in (onsets, durations, valid))
    if not (onsets.shape == durations.shape == valid.shape == (len(trial_types),)):
        raise ValueError(f"trial_timeline: {onsets.shape[0]} onsets, {durations.shape[0]} durations, "
                         f"{valid.shape[0]} valid flags and {len(trial_types)} trial types must match")
    valid = valid.astype(bool)
    types = sorted({str(t) for t in trial_types})
    row = np.array([types.index(str(t)) for t in trial_types], float)
    lo = min([run_start, *(onsets + min(window[0], 0))])
    hi = max([run_end, *(onsets + max(window[1], 0)), *(onsets + durations)])
    pad = 0.02 * ((hi - lo) or 1.0)
    names = [svg.shorten(t) for t in types]
    offset = svg.ylabel_offset(max([svg.text_width(t, TICK) for t in names], default=0.0))
    left = offset + 14
    fig = Figure(1056, 43 * len(types) + 116)
    ax = fig.add_axes((left, 12, 1056 - left - 20, 43 * len(types) + 24), (lo - pad, hi + pad),
                      (len(types) - 0.5, -0.5))
    ax.bands(np.array([[run_start, run_end]]), "#f0f0f0", opacity=1.0)
    ax.bands(censored_spans(censored_times, t_r), CENSORED, min_px=1.0)
    for ok, colour in ((True, "#26a269"), (False, "#c01c28")):
        sel = valid == ok
        ax.rects(onsets[sel] + window[0], row[sel] - 0.3, onsets[sel] + window[1], row[sel] + 0.3, colour, 0.25)
        ax.rects(onsets[sel], row[sel] - 0.3, onsets[sel] + np.maximum(durations[sel], 0.1), row[sel] + 0.3, colour)
    ax.yticks(np.arange(len(types)), names)
    ax.xticks()
    fig.text(1056 / 2, ax.y + ax.h + 24, f"time from the first stored volume (s)\ndark: event, light: trial window "
             f"{window[0]:g} to {window[1]:g} s; green: valid, red: invalid; grey: the run, pink: censored",
             anchor="middle", baseline="hanging")
    ax.ylabel("trial type", offset=offset)
    return fig.encode()


# --- connectivity -----------------------------------------------------------------------------------------------

def connectivity_matrix(matrix: np.ndarray, names: Sequence[str], *, measure: str = "correlation",
                        unit: str = "Pearson r") -> bytes:
    """A connectivity matrix (regions x regions) with a symmetric colour scale and its colour bar; region names
    on the axes when there are at most 40."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(names):
        raise ValueError(f"connectivity_matrix: a square matrix with one row per name is needed, got "
                         f"{matrix.shape} and {len(names)} names")
    n = len(names)
    off = matrix[~np.eye(n, dtype=bool)]
    off = np.abs(off[np.isfinite(off)])
    top = float(off.max()) if off.size else 1.0  # the colour scale of the finite values
    top = top if 0 < top < 1e300 else 1.0
    named = 0 < n <= 40
    labels = [svg.shorten(s) for s in names] if named else []
    margin = 34 + max([svg.text_width(s, 8.0) for s in labels], default=0.0)
    side = 480
    ticks = svg.nice_ticks(-top, top, 6)
    tick_text = svg.tick_labels(ticks)
    bar_title = margin + side + 20 + 16 + 6 + max([svg.text_width(t, TICK) for t in tick_text], default=0) + 12
    fig = Figure(bar_title + 14, margin + side + 20)
    ax = fig.add_axes((margin, 10, side, side), (-0.5, n - 0.5), (n - 0.5, -0.5))
    if n:
        ax.image(_ramp(matrix, RDBU_R, -top, top))
    idx = np.arange(n)
    if named:
        _, ys = ax.px(0, idx)
        xs, _ = ax.px(idx, 0)
        for x, y, s in zip(xs, ys, labels):
            fig.text(margin - 4, float(y), s, size=8.0, anchor="end", baseline="middle")
            fig.text(float(x), 10 + side + 4, s, size=8.0, anchor="end", baseline="middle", rotate=-90)
    fig.text(12, 10 + side / 2, "region", anchor="middle", baseline="middle", rotate=-90)
    fig.text(margin + side / 2, fig.height - 4, "region", anchor="middle")
    bar = fig.add_axes((margin + side + 20, 10, 16, side), (0, 1), (-top, top))
    bar.image(_ramp(np.linspace(top, -top, 256)[:, None], RDBU_R, -top, top))
    _, ys = bar.px(0, ticks)
    for y, lab in zip(ys, tick_text):
        fig.text(bar.x + bar.w + 6, float(y), lab, size=TICK, baseline="middle")
    fig.text(bar_title, 10 + side / 2, f"{measure} ({unit})", size=LABEL, anchor="middle", baseline="middle",
             rotate=-90)
    return fig.encode()
