"""A small SVG figure kit for the run figures: axes at fixed pixel boxes, lines, bands, bars, raster images
(PNG, written here) and text, with no plotting library.

The run figures are a few images on known grids, traces and labels whose sizes are known in advance, so they
are laid out in pixels here and the browser draws the text: no font is measured or rasterized, and a figure is
encoded in milliseconds (matplotlib cost a participant run 0.3-0.45 s to import and 0.3-0.5 s to draw).
Coordinates are SVG pixels (1/96 in), y downwards; data limits map linearly onto each axes' box.
"""

from __future__ import annotations

import base64
import html
import math
import re
import struct
import unicodedata
import zlib
from collections.abc import Sequence

import numpy as np

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
#: text sizes (px): axis labels and titles (10 pt, as matplotlib's default), tick labels, legends and notes
LABEL, TICK, SMALL = 13.3, 12.0, 10.7
#: zlib level of the PNG rasters (3: as fast as level 1 on these images, a few % fewer bytes)
PNG_COMPRESSION = 3


def png(rgb: np.ndarray) -> bytes:
    """An (h, w, 3) uint8 image as PNG bytes (8-bit RGB, no filter, no timestamp: equal images, equal bytes)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(f"png: an (h, w, 3) image is needed, got {rgb.shape}")
    h, w, _ = rgb.shape
    raw = np.zeros((h, 3 * w + 1), np.uint8)  # each row: filter type 0, then its pixels
    raw[:, 1:] = rgb.reshape(h, 3 * w)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), PNG_COMPRESSION)) + chunk(b"IEND", b""))


def hex_rgb(colour: str) -> np.ndarray:
    """``"#rrggbb"`` as three uint8."""
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], np.uint8)


def grey(values: np.ndarray, vmin: float, vmax: float, bad: str | None = None) -> np.ndarray:
    """Values as grey levels from ``vmin`` (black) to ``vmax`` (white), clipped; NaN in colour ``bad`` (or
    black): an (..., 3) uint8 image."""
    values = np.asarray(values, dtype=np.float32)
    span = vmax - vmin if vmax > vmin else 1.0
    with np.errstate(invalid="ignore"):
        level = np.clip((values - vmin) * (255.0 / span) + 0.5, 0, 255)
    nan = np.isnan(level)
    rgb = np.repeat(np.where(nan, 0, level).astype(np.uint8)[..., None], 3, axis=-1)
    if bad is not None and nan.any():
        rgb[nan] = hex_rgb(bad)
    return rgb


def nice_ticks(lo: float, hi: float, at_most: int) -> np.ndarray:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten apart) inside ``[lo, hi]``, at most ``at_most``
    intervals apart over the whole span."""
    lo, hi = min(lo, hi), max(lo, hi)
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi == lo:
        return np.array([lo]) if np.isfinite(lo) else np.array([])
    if not np.isfinite(hi - lo):  # limits near the float range (a 1e308 covariance): no round ticks to show
        return np.array([])
    raw = (hi - lo) / max(at_most, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    first = math.ceil(lo / step - 1e-9) * step
    return first + step * np.arange(int(math.floor((hi - first) / step + 1e-9)) + 1)


def tick_labels(values: np.ndarray) -> list[str]:
    """Tick values with the decimals their spacing needs (``-0`` written ``0``); in scientific notation
    (``2.5e-07``) when the spacing is below 1e-4 or a value reaches 1e6, as fixed decimals would be long or equal."""
    values = np.asarray(values, dtype=float)
    if not values.size:
        return []
    step = abs(float(np.min(np.diff(values)))) if values.size > 1 else abs(float(values[0]))
    if float(np.max(np.abs(values))) >= 1e6 or 0 < step < 1e-4:
        for digits in range(16):
            out = [f"{v:.{digits}e}" for v in values]
            if all(abs(float(o) - v) <= step * 1e-6 for o, v in zip(out, values)):
                break
        return ["0" if float(o) == 0 else o.replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")
                for o in out]
    decimals = 0
    while decimals < 8 and np.any(np.abs(np.round(values, decimals) - values) > step * 1e-6):
        decimals += 1
    out = [f"{v:.{decimals}f}" for v in values]
    return [o.lstrip("-") if float(o) == 0 else o for o in out]


#: characters XML 1.0 does not allow in a document (C0 controls but tab, newline and return; surrogates;
#: U+FFFE and U+FFFF): a trial type or region name holding one would make the whole SVG unreadable
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(s: str) -> str:
    """``s`` escaped for an SVG text, characters XML forbids shown as U+FFFD."""
    return html.escape(_NOT_XML.sub("\ufffd", str(s)), quote=True)


def _em(ch: str) -> float:
    """A character's drawn width (em), rounded up: DejaVu Sans / Arial lower case and digits ~0.6, capitals up to
    0.75 (M, W ~1), other scripts' letters up to 1.1 (Cyrillic Ж), East Asian wide characters 1, emoji 1.25."""
    if ch.isascii():
        return 1.0 if ch in "MWmw@%" else 0.78 if ch.isupper() else 0.64
    if ord(ch) > 0xFFFF or unicodedata.category(ch) == "So":
        return 1.25
    return 1.15


def text_width(s: str, size: float = LABEL) -> float:
    """A generous estimate of the drawn width (px) of the longest line of ``s`` at ``size`` (the layout leaves
    this much room)."""
    return size * max((sum(_em(ch) for ch in line) for line in str(s).split("\n")), default=0.0)


def ylabel_offset(tick_width: float, lines: int = 1) -> float:
    """Distance (px) from an axes' left edge to the centre of a rotated y label of ``lines`` lines beside tick
    labels ``tick_width`` px wide."""
    return 10 + tick_width + 0.6 * 1.2 * LABEL * lines + 2


def y_tick_width(lo: float, hi: float, height: float, size: float = TICK) -> float:
    """:attr:`Axes.tick_width` of the default y ticks of limits ``lo``, ``hi`` on an axes ``height`` px high,
    before the axes exist (to size a margin)."""
    labels = tick_labels(nice_ticks(lo, hi, max(1, int(height // 40)))) if np.isfinite([lo, hi]).all() else []
    return max([text_width(lab, size) for lab in labels], default=0.0)


def shorten(s: str, at_most: int = 40) -> str:
    """``s`` on one line and at most ``at_most`` characters: its middle replaced by an ellipsis, so that names
    sharing a long prefix (``..._cond_1``, ``..._cond_2``) stay apart (labels of a figure whose layout is fixed)."""
    s = " ".join(str(s).splitlines())
    if len(s) <= at_most:
        return s
    head = (at_most - 1) * 3 // 5
    return s[:head] + "\u2026" + s[len(s) - (at_most - 1 - head):]


def _n(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def text(x: float, y: float, s: str, *, size: float = LABEL, anchor: str = "start", baseline: str = "auto",
         colour: str = "#222", rotate: float = 0.0) -> str:
    """An SVG text; ``\\n`` starts a new line (lines stacked around ``y`` for a centred baseline)."""
    lines = s.split("\n")
    dy0 = {"middle": -(len(lines) - 1) / 2, "hanging": 0.0}.get(baseline, -(len(lines) - 1))
    rot = f" transform='rotate({_n(rotate)} {_n(x)} {_n(y)})'" if rotate else ""
    spans = "".join(f"<tspan x='{_n(x)}' dy='{_n((dy0 if k == 0 else 1) * 1.2 * size)}'>{xml_text(line)}</tspan>"
                    for k, line in enumerate(lines))
    return (f"<text x='{_n(x)}' y='{_n(y)}' font-size='{_n(size)}' text-anchor='{anchor}' "
            f"dominant-baseline='{baseline}' fill='{colour}'{rot}>{spans}</text>")


def spaced(positions: np.ndarray, half: Sequence[float]) -> list[int]:
    """Indices of the labels to draw, in order, each at least its own and the previous one's ``half`` extent (px)
    from the previous one kept (a 1-slice volume's axis is a few pixels high; a small CIFTI structure is a few
    rows of a carpet)."""
    keep: list[int] = []
    for k, p in enumerate(positions):
        if not keep or abs(p - positions[keep[-1]]) >= half[k] + half[keep[-1]]:
            keep.append(k)
    return keep


class Axes:
    """A pixel box ``(x, y, width, height)`` of a :class:`Figure` showing data limits ``xlim`` x ``ylim``
    (``ylim = (top, bottom)`` when given reversed, as image rows)."""

    def __init__(self, fig: Figure, box: tuple[float, float, float, float], xlim: tuple[float, float],
                 ylim: tuple[float, float]):
        self.fig, (self.x, self.y, self.w, self.h) = fig, box
        self.xlim, self.ylim = (float(xlim[0]), float(xlim[1])), (float(ylim[0]), float(ylim[1]))
        self.id = f"c{len(fig.clips)}"
        fig.clips.append(f"<clipPath id='{self.id}'><rect x='{_n(self.x)}' y='{_n(self.y)}' width='{_n(self.w)}' "
                         f"height='{_n(self.h)}'/></clipPath>")
        self.data: list[str] = []
        self.over: list[str] = []
        self.tick_width = 0.0  #: estimated width (px) of the widest y tick label (:func:`text_width`)

    def px(self, xs, ys) -> tuple[np.ndarray, np.ndarray]:
        """Data coordinates to figure pixels."""
        (x0, x1), (y0, y1) = self.xlim, self.ylim
        xs = self.x + (np.asarray(xs, dtype=float) - x0) * (self.w / ((x1 - x0) or 1.0))
        ys = self.y + self.h - (np.asarray(ys, dtype=float) - y0) * (self.h / ((y1 - y0) or 1.0))
        return xs, ys

    def line(self, xs, ys, colour: str, width: float = 1.0, dash: str = "") -> None:
        """A polyline, broken where a value is NaN (as a trace with unknown samples)."""
        px, py = self.px(xs, ys)
        ok = np.isfinite(px) & np.isfinite(py)
        start = ok & ~np.r_[False, ok[:-1]]
        cmds = [("M" if s else "L") + f"{x:.1f} {y:.1f}" for x, y, s, k in zip(px, py, start, ok) if k]
        if cmds:
            d = f" stroke-dasharray='{dash}'" if dash else ""
            self.data.append(f"<path d='{''.join(cmds)}' fill='none' stroke='{colour}' stroke-width='{_n(width)}' "
                             f"stroke-linejoin='round'{d}/>")

    def hline(self, y: float, colour: str, width: float = 1.0, dash: str = "") -> None:
        self.line(self.xlim, [y, y], colour, width, dash)

    def bands(self, spans: np.ndarray, colour: str, opacity: float = 0.6, min_px: float = 0.0) -> None:
        """Vertical bands over the axes' height, one per ``(x0, x1)`` row, each at least ``min_px`` wide."""
        if not len(spans):
            return
        x0, _ = self.px(spans[:, 0], 0)
        x1, _ = self.px(spans[:, 1], 0)
        centre, half = (x0 + x1) / 2, np.maximum(np.abs(x1 - x0) / 2, min_px / 2)
        d = "".join(f"M{a:.1f} {self.y:.1f}h{w:.2f}v{self.h:.1f}h{-w:.2f}z"
                    for a, w in zip(centre - half, 2 * half))
        self.data.append(f"<path d='{d}' fill='{colour}' fill-opacity='{opacity}'/>")

    def rects(self, x0s, y0s, x1s, y1s, colour: str, opacity: float = 1.0) -> None:
        """Filled rectangles between data corners (bars)."""
        ax, ay = self.px(x0s, y0s)
        bx, by = self.px(x1s, y1s)
        d = "".join(f"M{min(a, b):.1f} {min(c, e):.1f}h{abs(b - a):.2f}v{abs(e - c):.2f}h{-abs(b - a):.2f}z"
                    for a, c, b, e in zip(ax, ay, bx, by))
        if d:
            self.data.append(f"<path d='{d}' fill='{colour}' fill-opacity='{opacity}'/>")

    def image(self, rgb: np.ndarray, extent: Sequence[float] | None = None) -> None:
        """An (h, w, 3) image drawn with its pixels as squares (no smoothing) over ``extent`` (left, right,
        top, bottom in data units; the whole box by default): row 0 at the top. ``pixelated`` where the browser
        knows it, SVG 1.1's ``optimizeSpeed`` (nearest neighbour) where it does not."""
        x0, x1, y0, y1 = extent if extent is not None else (*self.xlim, *self.ylim[::-1])
        (a, b), (c, d) = self.px([x0, x1], [y0, y1])
        uri = "data:image/png;base64," + base64.b64encode(png(rgb)).decode("ascii")
        self.data.append(f"<image x='{_n(min(a, b))}' y='{_n(min(c, d))}' width='{_n(abs(b - a))}' "
                         f"height='{_n(abs(d - c))}' preserveAspectRatio='none' image-rendering='optimizeSpeed' "
                         "style='image-rendering:pixelated' "
                         f"href='{uri}'/>")

    def path(self, d: str, colour: str, width: float) -> None:
        """A raw path in figure pixels (outlines computed by the caller)."""
        if d:
            self.data.append(f"<path d='{d}' fill='none' stroke='{colour}' stroke-width='{_n(width)}'/>")

    def note(self, x: float, y: float, s: str, **style) -> None:
        """A text at data coordinates, drawn over the data and clipped to the axes."""
        px, py = self.px(x, y)
        self.data.append(text(float(px), float(py), s, **style))

    def xticks(self, values=None, labels: Sequence[str] | None = None, *, show: bool = True) -> None:
        """Ticks below the axes (values inside the x limits; round ones by default), labelled unless not
        ``show``."""
        values = nice_ticks(*self.xlim, max(1, int(self.w // 55))) if values is None else np.asarray(values)
        labels = tick_labels(values) if labels is None else labels
        xs = np.atleast_1d(self.px(values, 0)[0])
        keep = spaced(xs, [text_width(lab, TICK) / 2 + 3 for lab in labels])
        bottom = self.y + self.h
        for x, lab in zip(xs[keep], [labels[k] for k in keep]):
            self.over.append(f"<path d='M{x:.1f} {bottom:.1f}v4' stroke='#222'/>")
            if show:
                self.over.append(text(float(x), bottom + 6, lab, size=TICK, anchor="middle", baseline="hanging"))

    def yticks(self, values=None, labels: Sequence[str] | None = None, size: float = TICK) -> None:
        """Ticks left of the axes, labelled (round values inside the y limits by default)."""
        values = nice_ticks(*self.ylim, max(1, int(self.h // 40))) if values is None else np.asarray(values)
        labels = tick_labels(values) if labels is None else labels
        ys = np.atleast_1d(self.px(0, values)[1])
        keep = spaced(ys, [0.65 * size] * len(labels))
        labels = [labels[k] for k in keep]
        self.tick_width = max([text_width(lab, size) for lab in labels], default=0.0)
        for y, lab in zip(ys[keep], labels):
            self.over.append(f"<path d='M{self.x:.1f} {y:.1f}h-4' stroke='#222'/>")
            self.over.append(text(self.x - 6, float(y), lab, size=size, anchor="end", baseline="middle"))

    def xlabel(self, s: str, offset: float = 24) -> None:
        self.over.append(text(self.x + self.w / 2, self.y + self.h + offset, s, anchor="middle",
                              baseline="hanging"))

    def ylabel(self, s: str, offset: float | None = None) -> None:
        """A label rotated along the left edge, its lines centred ``offset`` px left of the axes (by default just
        clear of the tick labels drawn by :meth:`yticks`)."""
        if offset is None:
            offset = ylabel_offset(self.tick_width, s.count("\n") + 1)
        x, y = self.x - offset, self.y + self.h / 2
        self.over.append(text(x, y, s, anchor="middle", baseline="middle", rotate=-90))

    def title(self, s: str) -> None:
        self.over.append(text(self.x + self.w / 2, self.y - 7, s, anchor="middle"))

    def legend(self, entries: Sequence[tuple[str, str, str]]) -> None:
        """``(label, colour, dash)`` entries in a box at the upper right corner."""
        width = 34 + max(text_width(lab, SMALL) for lab, _, _ in entries)
        x, y = self.x + self.w - width - 6, self.y + 6
        self.over.append(f"<rect x='{_n(x)}' y='{_n(y)}' width='{_n(width)}' height='{_n(16 * len(entries) + 6)}' "
                         "fill='white' fill-opacity='0.85' stroke='#ccc'/>")
        for k, (lab, colour, dash) in enumerate(entries):
            ly = y + 11 + 16 * k
            d = f" stroke-dasharray='{dash}'" if dash else ""
            self.over.append(f"<path d='M{_n(x + 6)} {_n(ly)}h20' stroke='{colour}' stroke-width='1.5'{d}/>")
            self.over.append(text(x + 30, ly, lab, size=SMALL, baseline="middle"))

    def svg(self) -> str:
        frame = (f"<rect x='{_n(self.x)}' y='{_n(self.y)}' width='{_n(self.w)}' height='{_n(self.h)}' fill='none' "
                 "stroke='#222' stroke-width='0.8'/>")
        return f"<g clip-path='url(#{self.id})'>{''.join(self.data)}</g>{frame}{''.join(self.over)}"


class Figure:
    """A white ``width`` x ``height`` px SVG of :class:`Axes` and texts."""

    def __init__(self, width: float, height: float):
        self.width, self.height = width, height
        self.axes: list[Axes] = []
        self.clips: list[str] = []
        self.texts: list[str] = []

    def add_axes(self, box: tuple[float, float, float, float], xlim, ylim) -> Axes:
        ax = Axes(self, box, xlim, ylim)
        self.axes.append(ax)
        return ax

    def text(self, x: float, y: float, s: str, **style) -> None:
        self.texts.append(text(x, y, s, **style))

    def encode(self) -> bytes:
        """The figure as a standalone SVG document (UTF-8)."""
        w, h = _n(self.width), _n(self.height)
        return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' viewBox='0 0 {w} {h}' "
                f"font-family='{FONT}'><defs>{''.join(self.clips)}</defs><rect width='{w}' height='{h}' "
                f"fill='white'/>" + "".join(ax.svg() for ax in self.axes) + "".join(self.texts)
                + "</svg>").encode()


def rows_layout(top: float, bottom: float, ratios: Sequence[float], gap: float) -> list[tuple[float, float]]:
    """``(y, height)`` of axes stacked from ``top`` to ``bottom`` px in proportions ``ratios``, ``gap`` px apart."""
    unit = (bottom - top - gap * (len(ratios) - 1)) / float(sum(ratios))
    out, y = [], top
    for r in ratios:
        out.append((y, r * unit))
        y += r * unit + gap
    return out
