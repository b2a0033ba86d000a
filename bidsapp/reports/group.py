"""The group report (``group.html``): the QC table of every run, the runs left out and why, and the
denoising benchmark (QC-FC histograms and distance dependence per strategy) when the group level computed it."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from bidsapp.core.files import write_text
from bidsapp.core.tsv import read_tsv
from bidsapp.reports import group_figures
from bidsapp.reports.page import figure, page, table


def _fmt(v: str) -> str:
    try:
        x = float(v)
    except ValueError:
        return v
    return v if x.is_integer() and "." not in v else f"{x:.3g}"


def column_units(runs_tsv: Path) -> dict[str, str]:
    """Units of each column of ``group_runs.tsv``, from its column descriptions (``group_runs.json``: the QC
    metrics' units are those of the run sidecars' ``QC`` objects); {} when the descriptions are missing."""
    try:
        described = json.loads(Path(runs_tsv).with_suffix(".json").read_text())
    except (OSError, ValueError):
        return {}
    return {c: d["Units"] for c, d in described.items() if isinstance(d, dict) and d.get("Units")}


def qc_section(runs_tsv: Path) -> str:
    """The QC table: one row per run (``group_runs.tsv``), each column's units in its header."""
    header, rows = read_tsv(runs_tsv)
    units = column_units(runs_tsv)
    head = [f"{h} ({units[h]})" if h in units else h for h in header]
    return (f"<h2 id='qc'>Runs ({len(rows)})</h2><p class='muted'>One row per processed run, from "
            f"{runs_tsv.name} (column descriptions: {runs_tsv.stem}.json).</p>"
            + "<div class='wide'>" + table(([_fmt(v) for v in r] for r in rows), header=head) + "</div>")


def left_out_section(output_dir: Path) -> str:
    """Runs left out of each intersection mask, with why (the masks' JSON sidecars)."""
    items = []
    for sidecar in sorted(Path(output_dir).glob("space-*_desc-intersection_mask.json")):
        for name, why in (json.loads(sidecar.read_text()).get("LeftOut") or {}).items():
            items.append([sidecar.name.removesuffix(".json"), name, why])
    body = table(items, header=["intersection mask", "run's mask left out", "why"]) if items \
        else "<p class='muted'>No run was left out of an intersection mask.</p>"
    return "<h2 id='left-out'>Runs left out of the intersection masks</h2>" + body


def benchmark_figures(edges: dict[str, dict[str, np.ndarray]]) -> str:
    """QC-FC histograms and distance dependence, one panel per strategy (``edges``: label -> ``qcfc`` and
    ``distance`` (mm) of every edge)."""
    if not edges:
        return ""
    missing = sorted(label for label, e in edges.items() if not np.isfinite(e["qcfc"]).any())
    note = (f"<p class='muted'>No QC-FC to draw for {html.escape(', '.join(missing))}: not computed (the note of "
            "the table above says why).</p>") if missing else ""
    edges = {label: e for label, e in edges.items() if label not in missing}
    if not edges:
        return note
    qcfc = {label: e["qcfc"] for label, e in edges.items()}
    parts = [figure(group_figures.qcfc_histograms(qcfc), "QC-FC histograms",
                    "QC-FC of every edge per strategy: the correlation over participants between the edge and "
                    "mean framewise displacement (a narrow histogram around 0 = little motion left).")]
    dist = {label: (e["distance"], e["qcfc"]) for label, e in edges.items() if np.isfinite(e["distance"]).any()}
    if dist:
        parts.append(figure(group_figures.distance_dependence(dist), "QC-FC distance dependence",
                            "QC-FC against the distance between the region centroids of each edge (a flat cloud = "
                            "no distance dependence)."))
    return "\n".join(parts) + note


def group_report(output_dir: Path, *, benchmark_html: str | None = None,
                 edges: dict[str, dict[str, np.ndarray]] | None = None, notes: list[str] = ()) -> Path:
    """Write ``group.html`` in ``output_dir``.

    Parameters
    ----------
    output_dir : Path
        The output folder, holding ``group_runs.tsv`` and the intersection masks.
    benchmark_html : str, optional
        The denoising benchmark's table and excluded runs, as HTML; None when it was not computed.
    edges : dict, optional
        Per strategy label: ``qcfc`` and ``distance`` of every edge (arrays of equal length).
    notes : list of str
        What the group level could not compute, and why (shown as they are).
    """
    output_dir = Path(output_dir)
    parts = ["<h1>bidsapp group report</h1>", "<nav><a href='#qc'>runs</a><a href='#left-out'>left out</a>"
             "<a href='#benchmark'>denoising benchmark</a></nav>",
             qc_section(output_dir / "group_runs.tsv"), left_out_section(output_dir), "<div id='benchmark'></div>"]
    if benchmark_html:  # its own heading
        parts += [benchmark_html, benchmark_figures(edges or {})]
    else:
        parts.append("<h2>Denoising benchmark</h2><p class='muted'>Not computed: the benchmark compares denoising "
                     "strategies (several desc- labels of region columns in this folder) over participants.</p>")
    parts += [f"<p class='warn'>{html.escape(note)}</p>" for note in notes]
    out = output_dir / "group.html"
    write_text(out, page("bidsapp group report", parts))
    return out
