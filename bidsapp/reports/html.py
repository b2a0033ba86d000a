"""One self-contained page per participant: what was done to each run, what came out, the figures that show
it (embedded), and the methods text of these runs."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from bidsapp.core.io import write_text
from bidsapp.reports.page import markdown, page


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


def summary_rows(meta: dict, fd: np.ndarray, n_volumes: int) -> list[tuple[str, str]]:
    """The run's summary table: array, censoring, mask, denoising, cleaning, timing, trials."""
    p = meta["Parameters"]
    rows = [
        ("array", f"{meta['Shape'][0]} kept volumes x {meta['Shape'][1]} features ({meta['DataType']})"),
        ("volumes censored", f"{len(meta['CensoredVolumes'])} of {n_volumes}: {meta['CensoredVolumes']}"),
        ("mask", f"{meta['MaskSource']} ({meta['MaskVoxelCount']} "
                 f"{'grayordinates' if meta.get('Grayordinates') else 'voxels'})"),
        ("denoising", f"{p['denoise']}: {len(meta['ConfoundColumns'])} regressors "
                      f"(rank removed {meta['ConfoundRankRemoved']})"),
        ("cleaning", cleaning_summary(p)),
        ("TR / StartTime", f"{meta['RepetitionTime']} s / {meta['StartTime']} s"),
        ("mean framewise displacement", f"{np.nanmean(fd):.3f} mm" if np.isfinite(fd).any() else "n/a"),
    ]
    trials = meta.get("Trials") or {}
    if trials.get("NTrials") is not None:
        estimated = ((meta.get("QC") or {}).get("TrialsEstimated") or {}).get("Value")
        rows.append(("trials", f"{trials['NTrials']}: {trials['NValidTrials']} with a valid segment (no censored "
                               f"volume in the window {trials['TrialWindow']} s), "
                               + (f"{estimated} estimated by " if estimated is not None else "")
                               + f"{trials.get('TrialEstimates') or 'no estimates'}"))
    rows.append(("configuration hash", meta["ConfigurationHash"]))
    return rows


def participant_report(output_dir: Path, subject: str) -> Path | None:
    """Write ``sub-<subject>.html``: each run's summary, QC metrics and figures, then the methods text."""
    from bidsapp.outputs.reader import run_metas
    from bidsapp.reports.methods import fmriprep_version, methods
    from bidsapp.reports.run_report import run_section

    output_dir = Path(output_dir)
    sidecars = sorted((output_dir / f"sub-{subject}").rglob("*_timeseries.json"))
    if not sidecars:
        return None
    metas = run_metas(sidecars)
    nav = "<nav>" + "".join(f"<a href='#{html.escape(m['BIDSAppRun'], quote=True)}'>"
                            f"{html.escape(m['BIDSAppRun'].removeprefix(f'sub-{subject}_'))}</a>"
                            for m in metas) + " <a href='#methods'>methods</a></nav>"
    parts = [f"<h1>bidsapp report: sub-{html.escape(subject)}</h1>", nav]
    parts += [run_section(sc) for sc in sidecars]
    text, _ = methods(metas, fmriprep_version=fmriprep_version(output_dir))
    parts += ["<h2 id='methods'>Methods</h2><p class='muted'>The methods text of these runs (the whole output "
              "folder's is logs/CITATION.md, with logs/CITATION.bib).</p><div class='methods'>"
              + markdown(text.split("\n", 1)[1], shift=1) + "</div>"]
    versions = metas[-1]["SoftwareVersions"]
    parts.append("<h2>Software</h2><p class='muted'>"
                 + html.escape(", ".join(f"{k} {v}" for k, v in versions.items())) + "</p>")
    out = output_dir / f"sub-{subject}.html"
    write_text(out, page(f"bidsapp sub-{subject}", parts))
    return out
