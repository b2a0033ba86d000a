"""One self-contained HTML page per participant: what was done to each run, and what came out."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from bidsapp.core.io import write_text
from bidsapp.outputs.reader import read_run_outputs

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
.muted{color:#666;font-size:.85em}svg{background:#fafafa;border:1px solid #eee}"""


def _fd_svg(fd: np.ndarray, kept: np.ndarray, width: int = 900, height: int = 110) -> str:
    """Framewise displacement over volumes; censored volumes as red bars."""
    n = fd.size
    top = float(np.nanmax(fd)) if np.isfinite(fd).any() else 1.0
    top = max(top, 1e-6)
    xs = np.linspace(5, width - 5, n)
    ys = height - 15 - np.nan_to_num(fd) / top * (height - 25)
    bars = "".join(f'<rect x="{x - 1.5:.1f}" y="0" width="3" height="{height - 12}" fill="#f4c7c3"/>'
                   for x, k in zip(xs, kept) if not k)
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="framewise displacement">{bars}'
            f'<polyline fill="none" stroke="#1a5fb4" stroke-width="1.2" points="{pts}"/>'
            f'<text x="5" y="{height - 2}" font-size="10">volume 0</text>'
            f'<text x="{width - 60}" y="{height - 2}" font-size="10">volume {n - 1}</text>'
            f'<text x="5" y="10" font-size="10">FD max {top:.2f} mm</text></svg>')


def cleaning_summary(p: dict) -> str:
    """What cleaning did, in words, from a run sidecar's ``Parameters`` (e.g. ``linear detrend, no temporal
    filter, z-scored (zscore_sample), no smoothing``), not the option values (``low_pass=None``)."""
    low, high = p.get("low_pass"), p.get("high_pass")
    if not p.get("filter") or (low is None and high is None):
        temporal = "no temporal filter"
    elif p["filter"] == "cosine":
        temporal = f"cosine (DCT) high-pass {high:g} Hz"
    elif low is not None and high is not None:
        temporal = f"Butterworth band-pass {high:g}-{low:g} Hz"
    else:
        temporal = f"Butterworth {'low' if low is not None else 'high'}-pass {low if low is not None else high:g} Hz"
    scaling = {"zscore_sample": "z-scored (zscore_sample)", "psc": "percent signal change (psc)"}
    fwhm = p.get("smoothing_fwhm")
    return ", ".join(["linear detrend" if p.get("detrend") else "no detrend", temporal,
                      scaling.get(p.get("standardize"), "not standardized"),
                      f"smoothed {fwhm:g} mm FWHM" if fwhm else "no smoothing"])


def _row(k: str, v) -> str:
    return f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"


def participant_report(output_dir: Path, subject: str) -> Path | None:
    """Write ``sub-<subject>.html`` from the participant's sidecars and samples tables."""
    output_dir = Path(output_dir)
    sidecars = sorted((output_dir / f"sub-{subject}").rglob("*_timeseries.json"))
    if not sidecars:
        return None
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>bidsapp sub-{subject}</title>"
             f"<style>{_CSS}</style></head><body><h1>bidsapp report: sub-{html.escape(subject)}</h1>"]
    for sc in sidecars:
        run = read_run_outputs(sc)
        meta, stem, fd, kept = run.meta, run.stem, run.framewise_displacement, run.kept
        p = meta["Parameters"]
        parts.append(f"<h2>{html.escape(stem)}</h2><table>")
        parts += [
            _row("array", f"{meta['Shape'][0]} kept volumes x {meta['Shape'][1]} features ({meta['DataType']})"),
            _row("volumes censored", f"{len(meta['CensoredVolumes'])} of {run.n_volumes}: {meta['CensoredVolumes']}"),
            _row("mask", f"{meta['MaskSource']} ({meta['MaskVoxelCount']} "
                         f"{'grayordinates' if meta.get('Grayordinates') else 'voxels'})"),
            _row("denoising", f"{p['denoise']}: {len(meta['ConfoundColumns'])} regressors "
                              f"(rank removed {meta['ConfoundRankRemoved']})"),
            _row("cleaning", cleaning_summary(p)),
            _row("TR / StartTime", f"{meta['RepetitionTime']} s / {meta['StartTime']} s"),
            _row("mean framewise displacement", f"{np.nanmean(fd):.3f} mm" if np.isfinite(fd).any() else "n/a"),
        ]
        trials = meta.get("Trials") or {}
        if trials.get("NTrials") is not None:
            parts.append(_row("trials", f"{trials['NValidTrials']} valid of {trials['NTrials']}, window "
                                        f"{trials['TrialWindow']} s, {trials.get('TrialEstimates') or 'no estimates'}"))
        parts.append(_row("configuration hash", meta["ConfigurationHash"]))
        parts.append("</table><p class='muted'>Framewise displacement; red: censored volumes</p>")
        parts.append(_fd_svg(fd, kept))
        parts.append("<details><summary>confound columns</summary><p class='muted'>"
                     + html.escape(", ".join(meta["ConfoundColumns"]) or "none") + "</p></details>")
    versions = json.loads(sidecars[-1].read_text())["SoftwareVersions"]
    parts.append("<h2>Software</h2><p class='muted'>"
                 + html.escape(", ".join(f"{k} {v}" for k, v in versions.items())) + "</p></body></html>")
    out = output_dir / f"sub-{subject}.html"
    write_text(out, "\n".join(parts))
    return out
