"""Report figures: pure functions from arrays to PNG (or SVG) bytes.

Each function takes arrays and explicit arguments (no file, no settings) and returns the encoded image, so
the figures can be tested and reused outside the report. matplotlib is imported on first use; each figure is a
``matplotlib.figure.Figure`` on its own Agg canvas (no pyplot: no figure manager, no backend selection, nothing
to close). Every axis names its quantity and unit.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

#: colour of censored volumes (traces and the NaN rows of the carpet)
CENSORED = "#e8a09a"
DPI = 96
#: zlib level of the PNG figures: 3 encodes the 1,056 x 816 px carpet in 0.09 s into 0.74 MB, where the
#: default 6 takes 0.19 s for 0.94 MB (level 6 searches longer matches that this noisy image does not have);
#: level 1 saves another 25-30 % of the time for 5 % more bytes; the Z_RLE strategy doubles the bytes
PNG_COMPRESSION = 3


#: width (in) of each strategy's panel in the group figures: titles of neighbouring panels must not overlap
PANEL_WIDTH = 4.6
#: marker area (pt^2) of the distance-dependence scatter (one point per edge)
POINT_SIZE = 14


def new_figure(figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **subplots):
    """A figure of ``figsize`` inches at :data:`DPI` on an Agg canvas, and its axes (``Figure.subplots``).

    matplotlib is imported here, on first use (``bidsapp --help`` never imports it), without pyplot: the
    figure belongs to no figure manager, so it needs no closing and is freed with its last reference.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **subplots)


def margins(figsize: tuple[float, float], *, left: float, right: float, bottom: float, top: float,
            **spacing: float) -> dict[str, float]:
    """Subplot parameters (``gridspec_kw``) for margins given in inches: a figure whose labels are known in advance
    is laid out without ``tight_layout``, which measures every text of the figure (0.1-0.15 s per figure, a
    draw's worth of tick and text layout) to find margins that these sizes give directly.

    Parameters
    ----------
    figsize : (float, float)
        Width and height of the figure (in).
    left, right, bottom, top : float
        Space (in) between each edge of the figure and the axes grid, for tick labels, axis labels and titles.
    **spacing : float
        ``wspace`` / ``hspace``: the space between axes, as a fraction of the mean axes width / height.
    """
    width, height = figsize
    return {"left": left / width, "right": 1 - right / width, "bottom": bottom / height, "top": 1 - top / height,
            **spacing}


def encode(fig, fmt: str = "png") -> bytes:
    """The figure as PNG or SVG bytes (no timestamp, so that equal figures give equal bytes).

    The figure is drawn once, at its own size: ``bbox_inches="tight"`` would draw it twice to crop a margin of
    a few pixels, and so does savefig after ``tight_layout()`` (which leaves a placeholder layout engine behind
    that asks for a layout pass at every save), unless that engine is dropped: the layout is already done.
    A PNG holds the drawn canvas's pixels, written by PIL at :data:`PNG_COMPRESSION`, as RGB when the figure is
    opaque (every figure here).
    """
    from matplotlib.layout_engine import PlaceHolderLayoutEngine

    if fmt not in ("png", "svg"):
        raise ValueError(f"figure format {fmt!r}: use 'png' or 'svg'")
    if isinstance(fig.get_layout_engine(), PlaceHolderLayoutEngine):
        fig.set_layout_engine(None)
    buf = io.BytesIO()
    if fmt == "svg":
        fig.savefig(buf, format=fmt, dpi=DPI, metadata={"Date": None})
        return buf.getvalue()
    from PIL import Image

    fig.set_dpi(DPI)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    opaque = bool((rgba[..., 3] == 255).all())  # an opaque figure is stored as RGB: 25 % fewer bytes to deflate
    image = Image.fromarray(np.ascontiguousarray(rgba[..., :3]) if opaque else rgba)
    image.save(buf, format="png", compress_level=PNG_COMPRESSION, dpi=(DPI, DPI))
    return buf.getvalue()


# --- columns over the run's mean image ----------------------------------------------------------------------

PLANES = (("sagittal", 0, ("y", "z")), ("coronal", 1, ("x", "z")), ("axial", 2, ("x", "y")))
#: the overlay figure (in) and its margins (in; the top one grows by 0.3 in for a title): the tick labels are
#: world coordinates of a head (at most 4 characters, "-100"), the titles and axis labels one line of 10 pt; each
#: plane keeps its aspect ratio inside its cell, so ``wspace`` leaves room for the next plane's y labels
OVERLAY_SIZE = (11.0, 3.8)
OVERLAY_MARGINS = {"left": 0.75, "right": 0.15, "bottom": 0.6, "wspace": 0.28}


def _extent(affine: np.ndarray, shape: Sequence[int], axes: tuple[int, int]) -> list[float]:
    """imshow extent (mm) of a slice spanned by two voxel axes: the world coordinate each axis mostly follows
    (exact for the axis-aligned grids of fMRIPrep outputs; oblique grids are shown on their voxel axes)."""
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


def _slice(vol: np.ndarray, axis: int, index: int) -> np.ndarray:
    return np.take(vol, index, axis=axis)


def _labels_of(overlay: np.ndarray, axis: int, index: int, kind: str) -> np.ndarray:
    """A 2D integer image for one plane: the mask (1), the atlas labels, or for maps and spheres (4D) the
    1-based index of the map with the largest value (0 where every map is 0)."""
    sl = _slice(overlay, axis, index)
    if kind == "mask":
        return (sl > 0).astype(int)
    if overlay.ndim == 3:
        return np.rint(sl).astype(int)
    top = np.abs(sl).max(axis=-1)
    return np.where(top > 0, np.argmax(np.abs(sl), axis=-1) + 1, 0)


def overlay_planes(mean: np.ndarray, overlay: np.ndarray, affine: np.ndarray, *, kind: str = "mask",
                   title: str = "", fmt: str = "png") -> bytes:
    """The mask (or atlas, maps, spheres) over the run's mean image, in three planes through its centre.

    Parameters
    ----------
    mean : numpy.ndarray, shape (nx, ny, nz)
        The run's mean image.
    overlay : numpy.ndarray, shape (nx, ny, nz) or (nx, ny, nz, n_maps)
        ``kind="mask"``: the mask (> 0 inside), drawn as its outline; ``"labels"``: integer labels (0 =
        background), each a colour; ``"maps"`` / ``"spheres"``: one volume per map, each voxel coloured by the
        map with the largest absolute value.
    affine : numpy.ndarray, shape (4, 4)
        Voxel to world (mm) of both images; axes are labelled in mm.
    kind : {"mask", "labels", "maps", "spheres"}
    title : str
    fmt : {"png", "svg"}

    Returns
    -------
    bytes
    """
    if kind not in ("mask", "labels", "maps", "spheres"):
        raise ValueError(f"overlay_planes: kind {kind!r} is not one of mask, labels, maps, spheres")
    if mean.ndim != 3 or overlay.shape[:3] != mean.shape:
        raise ValueError(f"overlay_planes: overlay of shape {overlay.shape} is not on the mean image's grid "
                         f"{mean.shape}")
    cut = _cut(overlay)
    inside = mean[np.isfinite(mean) & (mean != 0)]
    lo, hi = np.percentile(inside, [2, 98]) if inside.size else (0.0, 1.0)
    fig, axes = new_figure(OVERLAY_SIZE, 1, 3, gridspec_kw=margins(OVERLAY_SIZE, **OVERLAY_MARGINS,
                                                                   top=0.35 + (0.3 if title else 0)))
    for ax, (name, axis, (u, v)) in zip(axes, PLANES):
        others = [a for a in range(3) if a != axis]
        ext = _extent(affine, mean.shape, tuple(others))
        ax.imshow(_slice(mean, axis, cut[axis]).T, origin="lower", cmap="gray", vmin=lo, vmax=hi, extent=ext,
                  interpolation="nearest")
        lab = _labels_of(overlay, axis, cut[axis], kind).T
        if kind == "mask":
            ax.contour(lab, levels=[0.5], colors="#ff3b30", linewidths=1.2, origin="lower", extent=ext)
        elif lab.any():
            shown = np.ma.masked_equal(lab, 0)
            ax.imshow(shown % 20, origin="lower", cmap="tab20", vmin=0, vmax=19, alpha=0.55, extent=ext,
                      interpolation="nearest")
        world = affine[:3] @ np.r_[cut, 1]
        ax.set_title(f"{name}, {'xyz'[axis]} = {world[axis]:.0f} mm", fontsize=10)
        ax.set_xlabel(f"{u} (mm)")
        ax.set_ylabel(f"{v} (mm)")
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.08 / OVERLAY_SIZE[1], va="top")
    return encode(fig, fmt)


def coverage_bars(structures: Sequence[str], counts: Sequence[int], *, title: str = "", fmt: str = "png") -> bytes:
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
    fig, ax = new_figure((8, 0.22 * len(names) + 1.2))
    ax.barh(np.arange(len(names)), counts, color="#1a5fb4")
    ax.set_yticks(np.arange(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("columns of the run (grayordinates)")
    for y, c in enumerate(counts):
        ax.text(c, y, f" {c}", va="center", fontsize=7)
    ax.set_title(title or "grayordinates per structure", fontsize=10)
    fig.tight_layout()
    return encode(fig, fmt)


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


def _shade(ax, spans: np.ndarray, *, min_pixels: float = 0.0, **style) -> None:
    """Time spans (s) as light red bands over the axes' height: one collection, however many spans.

    ``min_pixels``: each band at least this wide on the drawn axes (their x limits and size must be final), so
    that a single censored volume of a long run, narrower than a pixel, is still seen."""
    from matplotlib.collections import PolyCollection

    if len(spans) and min_pixels > 0:
        x0, x1 = ax.get_xlim()
        least = min_pixels * abs(x1 - x0) / max(ax.get_window_extent().width, 1.0)
        centre, half = spans.mean(axis=1), np.maximum((spans[:, 1] - spans[:, 0]) / 2, least / 2)
        spans = np.column_stack([centre - half, centre + half])
    if len(spans):
        boxes = [[(x0, 0), (x0, 1), (x1, 1), (x1, 0)] for x0, x1 in spans]
        ax.add_collection(PolyCollection(boxes, transform=ax.get_xaxis_transform(), facecolors=CENSORED,
                                         alpha=0.6, linewidths=0, **style), autolim=False)


def carpet_pixels(data: np.ndarray, width: int, height: int) -> np.ndarray:
    """A carpet's image reduced to the pixels it is drawn on, as ``imshow(interpolation="nearest")`` shows it,
    with its NaN marks kept.

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


def _traces(axes, times: np.ndarray, fd: np.ndarray, dvars_before: np.ndarray, dvars_after: np.ndarray,
            censored: np.ndarray, fd_threshold: float | None) -> None:
    """The framewise displacement and standardized DVARS panels."""
    axes[0].plot(times, fd, color="#1a5fb4", lw=1)
    if fd_threshold is not None:
        axes[0].axhline(fd_threshold, color="#c01c28", ls="--", lw=0.8, label=f"threshold {fd_threshold:g} mm")
        axes[0].legend(loc="upper right", fontsize=8)
    axes[0].set_ylabel("FD (mm)")
    axes[1].plot(times, dvars_before, color="#813d9c", lw=1, label="before cleaning")
    axes[1].plot(times, dvars_after, color="#26a269", lw=1, label="after cleaning")
    axes[1].legend(loc="upper right", fontsize=8)
    axes[1].set_ylabel("std. DVARS\n(ratio, 1 = expected)")
    shown = np.r_[np.asarray(dvars_before)[~censored], np.asarray(dvars_after)[~censored]]
    if np.isfinite(shown).any():  # the scale of the kept volumes (a censored spike would flatten them)
        axes[1].set_ylim(0, 1.1 * float(np.nanmax(shown)))


#: the carpet figure (in) and its margins (in): two-line y labels beside tick labels of up to 6 characters
#: ("0.0125" mm), the time axis' label and tick labels below (the last one overhangs the right edge by half its width)
CARPET_SIZE = (11.0, 8.5)
CARPET_MARGINS = {"left": 1.0, "right": 0.3, "bottom": 0.6, "top": 0.2, "hspace": 0.17}


def carpet_plot(before: np.ndarray, after: np.ndarray, *, t_r: float, start_time: float = 0.0,
                fd: np.ndarray, dvars_before: np.ndarray, dvars_after: np.ndarray, censored: np.ndarray,
                fd_threshold: float | None = None, n_features: int | None = None,
                groups: Sequence[tuple[str, int]] = (), fmt: str = "png") -> bytes:
    """Carpet plot before and after cleaning, under framewise displacement and standardized DVARS traces.

    The carpets are reduced to the pixels they are drawn on first (:func:`carpet_pixels`): a 2,000 x 4,000
    carpet is drawn as the ~1,000 x 250 pixels a reader sees, with every censored volume still marked.

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
    """
    from matplotlib import colormaps

    n, k = before.shape
    censored = np.asarray(censored, dtype=bool)
    if after.shape != (n, k) or any(np.shape(a) != (n,) for a in (fd, dvars_before, dvars_after, censored)):
        raise ValueError(f"carpet_plot: before {before.shape}, after {after.shape}, and traces of "
                         f"{[np.shape(a) for a in (fd, dvars_before, dvars_after, censored)]} must share "
                         f"{n} volumes")
    times = start_time + np.arange(n) * t_r
    ext = [times[0] - t_r / 2, times[-1] + t_r / 2, k, 0]
    fig, axes = new_figure(CARPET_SIZE, 4, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1, 2.4, 2.4],
                                                                        **margins(CARPET_SIZE, **CARPET_MARGINS)})
    _traces(axes, times, fd, dvars_before, dvars_after, censored, fd_threshold)
    for ax, what in ((axes[2], "before cleaning"), (axes[3], "after cleaning")):
        ax.set_xlim(ext[0], ext[1])
        ax.set_ylim(k, 0)
        ax.set_ylabel(f"{what}\ncolumns ({k}" + (f" of {n_features})" if n_features else ")"))
        for name, row in groups:
            ax.axhline(row, color="#f6d32d", lw=0.6)
            ax.text(ext[0], row, f" {name}", color="#f6d32d", fontsize=6, va="top")
    spans = censored_spans(times[censored], t_r)
    for ax in axes[:2]:
        _shade(ax, spans, min_pixels=1.0)
    axes[3].set_xlabel("time (s); red: censored volumes (in the carpet also columns without data); carpet: "
                       "z-scored signal, grey scale -2 to 2 SD")
    cmap = colormaps["gray"].with_extremes(bad=CENSORED)
    for ax, data in ((axes[2], before), (axes[3], after)):
        box = ax.get_window_extent()
        image = carpet_pixels(data, max(1, round(box.width)), max(1, round(box.height)))
        ax.imshow(np.ma.masked_invalid(image), aspect="auto", cmap=cmap, vmin=-2, vmax=2, extent=ext,
                  interpolation="nearest")
    return encode(fig, fmt)


# --- trial timeline -------------------------------------------------------------------------------------------

def trial_timeline(onsets: np.ndarray, durations: np.ndarray, trial_types: Sequence[str], valid: np.ndarray, *,
                   window: tuple[float, float], run_start: float, run_end: float,
                   censored_times: Sequence[float] = (), t_r: float = 0.0, fmt: str = "png") -> bytes:
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
    onsets, durations, valid = (np.asarray(a) for a in (onsets, durations, valid))
    if not (onsets.shape == durations.shape == valid.shape == (len(trial_types),)):
        raise ValueError(f"trial_timeline: {onsets.shape[0]} onsets, {durations.shape[0]} durations, "
                         f"{valid.shape[0]} valid flags and {len(trial_types)} trial types must match")
    types = sorted({str(t) for t in trial_types})
    fig, ax = new_figure((11, 0.45 * len(types) + 1.6))
    ax.axvspan(run_start, run_end, color="#f0f0f0", zorder=0)
    _shade(ax, censored_spans(censored_times, t_r), zorder=1)
    for o, d, tt, ok in zip(onsets, durations, trial_types, valid):
        y = types.index(str(tt))
        colour = "#26a269" if ok else "#c01c28"
        ax.barh(y, window[1] - window[0], left=o + window[0], height=0.6, color=colour, alpha=0.25, zorder=2)
        ax.barh(y, max(float(d), 0.1), left=o, height=0.6, color=colour, zorder=3)
    ax.set_yticks(np.arange(len(types)), types)
    ax.set_ylim(len(types) - 0.5, -0.5)
    ax.set_xlabel(f"time from the first stored volume (s); dark: event, light: trial window {window[0]:g} to "
                  f"{window[1]:g} s; green: valid, red: invalid; grey: the run, pink: censored")
    ax.set_ylabel("trial type")
    fig.tight_layout()
    return encode(fig, fmt)


# --- connectivity and the group level -------------------------------------------------------------------------

def connectivity_matrix(matrix: np.ndarray, names: Sequence[str], *, measure: str = "correlation",
                        unit: str = "Pearson r", fmt: str = "png") -> bytes:
    """A connectivity matrix (regions x regions) with a symmetric colour scale; region names on the axes when
    there are at most 40."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(names):
        raise ValueError(f"connectivity_matrix: a square matrix with one row per name is needed, got "
                         f"{matrix.shape} and {len(names)} names")
    off = matrix[~np.eye(len(names), dtype=bool)]
    top = float(np.nanmax(np.abs(off))) if off.size and np.isfinite(off).any() else 1.0
    fig, ax = new_figure((6.5, 5.5))
    im = ax.imshow(matrix, cmap="RdBu_r", vmin=-top, vmax=top, interpolation="nearest")
    fig.colorbar(im, ax=ax, label=f"{measure} ({unit})")
    if len(names) <= 40:
        ax.set_xticks(np.arange(len(names)), names, rotation=90, fontsize=6)
        ax.set_yticks(np.arange(len(names)), names, fontsize=6)
    ax.set_xlabel("region")
    ax.set_ylabel("region")
    fig.tight_layout()
    return encode(fig, fmt)


def qcfc_histograms(qcfc: dict[str, np.ndarray], *, fmt: str = "png") -> bytes:
    """One histogram per denoising strategy of QC-FC: the correlation over participants between each edge and
    mean framewise displacement (closer to 0 = less motion left in the edges)."""
    if not qcfc:
        raise ValueError("qcfc_histograms: no strategy given")
    return encode(qcfc_histogram_figure(qcfc), fmt)


def wrap_label(text: str, width: int = 36) -> str:
    """A panel title on lines of at most ``width`` characters where it can, broken after ``_`` (between BIDS
    entities: ``atlas-demo_space-MNI152NLin2009cAsym_desc-none`` is three lines)."""
    lines: list[str] = []
    for part in text.split("_"):
        if lines and len(lines[-1]) + 1 + len(part) <= width:
            lines[-1] += "_" + part
        else:
            if lines:
                lines[-1] += "_"
            lines.append(part)
    return "\n".join(lines)


def _strategy_panels(n: int):
    """A figure of ``n`` side-by-side panels wide enough for their two-line titles (4.6 in each)."""
    return new_figure((PANEL_WIDTH * n + 0.6, 3.4), 1, n, sharex=True, sharey=True, squeeze=False)


def qcfc_histogram_figure(qcfc: dict[str, np.ndarray]):
    """The matplotlib figure of :func:`qcfc_histograms`."""
    fig, axes = _strategy_panels(len(qcfc))
    bins = np.linspace(-1, 1, 41)
    for ax, (strategy, r) in zip(axes[0], qcfc.items()):
        r = np.asarray(r, dtype=float)
        r = r[np.isfinite(r)]
        ax.hist(r, bins=bins, color="#1a5fb4")
        ax.axvline(0, color="k", lw=0.6)
        median = np.median(np.abs(r)) if r.size else np.nan
        ax.set_title(f"{wrap_label(strategy)}\nmedian |r| {median:.3f}", fontsize=9)
        ax.set_xlabel("QC-FC (Pearson r, edge vs mean FD)")
    axes[0][0].set_ylabel("edges")
    fig.tight_layout()
    return fig


def distance_dependence(points: dict[str, tuple[np.ndarray, np.ndarray]], *, fmt: str = "png") -> bytes:
    """QC-FC against the distance between the two regions of each edge, one panel per strategy, with the
    Spearman correlation of the two (distance dependence, as the fMRIPrep denoising benchmark; near 0 is
    better) and a least-squares line."""
    if not points:
        raise ValueError("distance_dependence: no strategy given")
    return encode(distance_dependence_figure(points), fmt)


def distance_dependence_figure(points: dict[str, tuple[np.ndarray, np.ndarray]]):
    """The matplotlib figure of :func:`distance_dependence`."""
    from scipy.stats import spearmanr

    fig, axes = _strategy_panels(len(points))
    for ax, (strategy, (dist, r)) in zip(axes[0], points.items()):
        dist, r = np.asarray(dist, dtype=float), np.asarray(r, dtype=float)
        ok = np.isfinite(dist) & np.isfinite(r)
        ax.scatter(dist[ok], r[ok], s=POINT_SIZE, alpha=0.6, color="#1a5fb4", lw=0)
        rho = float(spearmanr(dist[ok], r[ok])[0]) if ok.sum() > 2 else np.nan
        if np.isfinite(rho):
            slope, icpt = np.polyfit(dist[ok], r[ok], 1)
            xs = np.array([dist[ok].min(), dist[ok].max()])
            ax.plot(xs, icpt + slope * xs, color="#c01c28", lw=1)
        ax.set_title(f"{wrap_label(strategy)}\nSpearman rho(distance, QC-FC) = {rho:.3f}", fontsize=9)
        ax.set_xlabel("distance between region centroids (mm)")
    axes[0][0].set_ylabel("QC-FC (Pearson r)")
    fig.tight_layout()
    return fig
