"""Group-level figures (matplotlib): QC-FC histograms and distance dependence per denoising strategy.

Each function takes arrays and returns the encoded image. matplotlib is imported on first use (a participant run
never imports it: its figures are :mod:`bidsapp.reports.figures`, drawn as SVG); each figure is a
``matplotlib.figure.Figure`` on its own Agg canvas (no pyplot: no figure manager, no backend selection, nothing
to close). Every axis names its quantity and unit.
"""

from __future__ import annotations

import io

import numpy as np

DPI = 96
#: zlib level of the PNG figures (3: the default 6 searches longer matches that these images do not have)
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
