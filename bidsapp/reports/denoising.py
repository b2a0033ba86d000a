"""The "Denoising benchmark" section of the group report, and the data its figures need.

:func:`benchmark_section` renders ``group_denoising.tsv`` (one row per strategy x atlas x space) and the runs
``group_denoising_runs.tsv`` excludes as HTML; :func:`figure_data` reads ``group_denoising_edges.tsv`` into
per-strategy arrays (QC-FC histograms, QC-FC against distance). :func:`write_group_report` writes a minimal
self-contained ``group.html`` of sections.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from bidsapp.core.files import write_text
from bidsapp.core.tsv import read_tsv

_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:3px 6px;text-align:left}
.muted{color:#666;font-size:.85em}"""

#: what the benchmark's connectivity is (the report must not let a reader think it scored something else)
CONNECTIVITY_SOURCE = ("Each run's connectivity is the correlation of its cleaned region time series (kept volumes) "
                       "from the Ledoit-Wolf covariance, as nilearn's ConnectivityMeasure(kind='correlation') and "
                       "the fMRIPrep denoising benchmark's code: the values of the run's "
                       "meas-PearsonCorrelation _relmat.tsv without --fisher-z, recomputed from its _timeseries "
                       "array whether or not the run wrote _relmat files (partial correlation and covariance "
                       "matrices are not scored).")

#: shown columns of group_denoising.tsv: (column, header, unit or format)
_SHOWN = (("atlas", "atlas", None), ("space", "space", None), ("desc", "strategy (desc)", None),
          ("n_participants", "participants", None), ("n_runs_excluded", "runs excluded", None),
          ("covariates", "QC-FC adjusted for", None),
          ("qcfc_significant_percent", "edges p<0.05 (%)", "{:.1f}"),
          ("qcfc_fdr_significant_percent", "edges FDR<0.05 (%)", "{:.1f}"),
          ("qcfc_median_abs", "median |QC-FC|", "{:.3f}"),
          ("distance_dependence", "distance dependence (Spearman ρ)", "{:.3f}"),
          ("dof_lost_mean", "tDOF lost (degrees of freedom)", "{:.1f}"),
          ("dof_lost_percent_mean", "tDOF lost (%)", "{:.1f}"),
          ("note", "note", None))


def _cell(value: str, fmt: str | None) -> str:
    if value in ("n/a", ""):
        return "n/a"
    if fmt is None:
        return value
    try:
        return fmt.format(float(value))
    except ValueError:
        return value


def _read(path: Path) -> list[dict[str, str]]:
    header, rows = read_tsv(path)
    return [dict(zip(header, r)) for r in rows]


def benchmark_section(output_dir: Path) -> str:
    """HTML of the benchmark table and the excluded runs (or why there is none)."""
    output_dir = Path(output_dir)
    table = output_dir / "group_denoising.tsv"
    if not table.exists():
        return ("<h2>Denoising benchmark</h2><p>Not computed: no run has region columns (--atlas, --roi-masks, "
                "--spheres); connectivity between voxels is not compared.</p>")
    rows = _read(table)
    parts = ["<h2>Denoising benchmark</h2><p class='muted'>Per strategy and atlas, over participants: QC-FC is "
             "the correlation across participants between each edge's connectivity and mean framewise "
             "displacement (lower is better). " + CONNECTIVITY_SOURCE + " Distance dependence is the Spearman "
             "correlation of QC-FC with the distance between region centroids (closer to 0 is better); tDOF "
             "lost: volumes minus the degrees of freedom left after cleaning. Column definitions: "
             "group_denoising.json.</p><div class='wide'><table><tr>"
             + "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in _SHOWN) + "</tr>"]
    for row in rows:
        parts.append("<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c, 'n/a'), fmt))}</td>"
                                      for c, _, fmt in _SHOWN) + "</tr>")
    parts.append("</table></div>")
    runs = output_dir / "group_denoising_runs.tsv"
    excluded = {r["run"].rsplit("_atlas-", 1)[0].rsplit("_desc-", 1)[0]: r["exclusion_reason"]
                for r in (_read(runs) if runs.exists() else []) if r["excluded"] == "True"}
    parts.append(f"<h3>Runs excluded ({len(excluded)})</h3>")
    parts.append("<ul>" + "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in sorted(excluded.items()))
                 + "</ul>" if excluded else "<p class='muted'>none</p>")
    return "\n".join(parts)


def figure_data(output_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per strategy (``atlas-<atlas>_space-<space>_desc-<desc>``): ``qcfc``, ``qcfc_p`` and ``distance`` (mm)
    of every edge, from ``group_denoising_edges.tsv`` ({} when absent)."""
    path = Path(output_dir) / "group_denoising_edges.tsv"
    if not path.exists():
        return {}
    header, rows = read_tsv(path)
    col = {c: i for i, c in enumerate(header)}
    out: dict[str, dict[str, list]] = {}
    for r in rows:
        label = f"atlas-{r[col['atlas']]}_space-{r[col['space']]}_desc-{r[col['desc']]}"
        entry = out.setdefault(label, {"qcfc": [], "qcfc_p": [], "distance": []})
        for key in entry:
            entry[key].append(np.nan if r[col[key]] == "n/a" else float(r[col[key]]))
    return {label: {k: np.array(v) for k, v in entry.items()} for label, entry in out.items()}


def write_group_report(output_dir: Path, sections: list[str]) -> Path:
    """``group.html``: a self-contained page of the given HTML sections."""
    out = Path(output_dir) / "group.html"
    write_text(out, "<!doctype html><html><head><meta charset='utf-8'><title>bidsapp group report</title>"
                    f"<style>{_CSS}</style></head><body><h1>bidsapp group report</h1>\n" + "\n".join(sections)
               + "\n</body></html>\n")
    return out
