"""One run's section of the participant report, drawn from the run's outputs and its report data
(``_reportdata.npz``: carpet before / after cleaning, DVARS, mean image)."""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from bidsapp.core.carpet import dequantize
from bidsapp.core.qc import QC_FIELDS
from bidsapp.core.tsv import read_tsv
from bidsapp.outputs.reader import RunTables, read_run_tables
from bidsapp.reports import figures
from bidsapp.reports.page import figure, key_values, table

#: units of the QC metrics (the sidecar's ``QC`` object, or the same names computed here): one table of them
QC_UNITS = {key: unit for key, (unit, _) in QC_FIELDS.items()}
#: the overlay drawn over the mean image, by column space
OVERLAY_KIND = {"voxels": "mask", "labels": "labels", "maps": "maps", "spheres": "spheres"}


@dataclass
class RunFiles:
    """A run's outputs as the report reads them: the :class:`~bidsapp.outputs.reader.RunTables` that
    :func:`~bidsapp.outputs.reader.read_run_tables` gives (the files and checks of :func:`bidsapp.load`, the
    tables without pandas), with the report's helpers."""

    run: RunTables

    @property
    def meta(self) -> dict:
        return self.run.meta

    @property
    def stem(self) -> str:
        return self.run.stem

    @property
    def outputs(self) -> dict[str, Path]:
        """The paths of the files the sidecar lists, by file name."""
        return self.run.outputs

    @property
    def onsets(self) -> np.ndarray:
        """Time of each volume (s): StartTime + volume * TR."""
        return self.meta.get("StartTime", 0.0) + np.arange(self.run.n_volumes) * self.meta["RepetitionTime"]

    @property
    def non_steady_state(self) -> np.ndarray:
        nss = np.zeros(self.run.n_volumes, dtype=bool)
        nss[(self.meta.get("NonSteadyState") or {}).get("Volumes", [])] = True
        return nss

    def get(self, end: str) -> Path | None:
        """The listed output whose name ends with ``end`` (e.g. ``_features.tsv``)."""
        return self.run.output(end)


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


def read_run(sidecar: Path) -> RunFiles:
    """The run's outputs, read by the one reader of the output folder."""
    return RunFiles(read_run_tables(sidecar))


def _floats(values: list[str]) -> np.ndarray:
    return np.array([np.nan if v == "n/a" else float(v) for v in values])


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1]) if ok.sum() > 2 and a[ok].std() > 0 and b[ok].std() > 0 \
        else float("nan")


def qc_metrics(run: RunFiles, data: dict | None) -> dict[str, tuple[object, str]]:
    """The run's QC metrics, name -> (value, unit): the sidecar's ``QC`` object when it has one (entries
    ``{"Value", "Units"}``, or plain values); otherwise those computed here from the samples table, the sidecar
    and the report data (same names)."""
    if run.meta.get("QC"):
        return {k: (v.get("Value"), v.get("Units", QC_UNITS.get(k, ""))) if isinstance(v, dict)
                else (v, QC_UNITS.get(k, "")) for k, v in run.meta["QC"].items()}
    fd, kept, nss = run.run.framewise_displacement, run.run.kept, run.non_steady_state
    steady = fd[~nss][np.isfinite(fd[~nss])]
    qc = {"FramewiseDisplacementMean": float(steady.mean()) if steady.size else None,
          "FramewiseDisplacementMax": float(steady.max()) if steady.size else None,
          "NonSteadyStateVolumes": int(nss.sum()), "CensoredVolumeCount": int((~kept & ~nss).sum()),
          "CensoredFraction": float((~kept & ~nss).sum() / max(1, (~nss).sum()))}
    if "DegreesOfFreedom" in run.meta:
        qc["DegreesOfFreedom"] = run.meta["DegreesOfFreedom"]
        qc["DegreesOfFreedomLost"] = kept.size - run.meta["DegreesOfFreedom"]
    if data is not None:
        for when in ("Before", "After"):
            dv = data[f"dvars_{when.lower()}"]
            qc[f"StandardizedDVARSMean{when}"] = float(np.nanmean(dv)) if np.isfinite(dv).any() else None
            qc[f"FramewiseDisplacementDVARSCorrelation{when}"] = _corr(fd, dv)
    trials = run.meta.get("Trials") or {}
    if trials.get("NTrials") is not None:
        qc["TrialsValidSegments"] = trials["NValidTrials"]
        qc["TrialsInvalidSegments"] = trials["NTrials"] - trials["NValidTrials"]
    estimated = ((run.meta.get("QC") or {}).get("TrialsEstimated") or {}).get("Value")
    if estimated is not None:
        qc["TrialsEstimated"] = estimated
    return {k: (v, QC_UNITS.get(k, "")) for k, v in qc.items()}


def qc_table(qc: dict[str, tuple[object, str]]) -> str:
    """QC metrics with their units (numbers to 3 significant digits)."""
    def fmt(v):
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return "n/a"
        return f"{v:.3g}" if isinstance(v, float) else v

    return table(([k, fmt(v), unit] for k, (v, unit) in qc.items()), header=["metric", "value", "unit"])


def dominant_map(path: Path, floor: float = 0.1) -> np.ndarray:
    """A 3D image of which map (1-based) has the largest absolute value at each voxel, counting a map only
    where it reaches ``floor`` of its own peak (0: no map); read one map at a time (an atlas of maps may
    hold hundreds of volumes)."""
    img = nib.load(path)
    if img.ndim == 3:
        return np.rint(np.asanyarray(img.dataobj)).astype(int)
    best = np.zeros(img.shape[:3])
    label = np.zeros(img.shape[:3], dtype=int)
    for k in range(img.shape[3]):
        vol = np.abs(np.asanyarray(img.dataobj[..., k]))
        better = (vol > best) & (vol >= floor * vol.max())
        best[better], label[better] = vol[better], k + 1
    return label


def _overlay_figure(run: RunFiles, data) -> str:
    """The mask / atlas / maps / spheres over the mean image, or the columns per structure (grayordinates)."""
    kind = run.meta.get("ColumnSpace", "voxels")
    if kind not in OVERLAY_KIND:
        structures = _structures(run)
        if not structures:
            return "<p class='muted'>No structure column in the features table: nothing to draw.</p>"
        names = list(dict.fromkeys(structures))  # in the order of the columns
        counts = Counter(structures)
        return figure(figures.coverage_bars(names, [counts[n] for n in names]),
                      "columns per structure", "Grayordinate run: the columns in each CIFTI structure (a volume "
                      "overlay has no meaning for surface vertices).", fmt="svg")
    if data is None or "mean" not in data:
        return "<p class='muted'>No mean image (report data missing): rerun the participant level.</p>"
    image = run.get("_mask.nii.gz") if kind == "voxels" else run.outputs.get(run.meta.get("ColumnImage") or "")
    if image is None:
        return "<p class='muted'>No mask or column image among the outputs.</p>"
    over = np.asanyarray(nib.load(image).dataobj) if kind == "voxels" else dominant_map(image)
    what = {"mask": "mask outline (red)", "labels": "atlas regions (colours)",
            "maps": "maps, each voxel coloured by the map with the largest weight",
            "spheres": "spheres, each coloured by its seed"}[OVERLAY_KIND[kind]]
    drawn = figures.overlay_planes(data["mean"].astype(np.float32), over, data["affine"],
                                   kind="mask" if kind == "voxels" else "labels")
    return figure(drawn, f"{what} over the mean image", f"The run's {what} over its temporal mean image; three "
                  "planes through the centre of the overlay (world coordinates, mm). Source: "
                  f"{run.meta.get('MaskSource', '')}.", fmt="svg")


def coverage_section(run: RunFiles) -> str:
    """Which regions ``--min-coverage`` turned into NaN columns, with their coverage (``_features.tsv``); ""
    when the run's columns have no coverage (voxels, grayordinates)."""
    if "coverage" not in run.run.features:  # region runs only: never parse a voxel run's table (a row per voxel)
        return ""
    features = _features(run)
    threshold = (run.meta.get("Parameters") or {}).get("min_coverage")
    rule = f"--min-coverage {threshold:g}" if isinstance(threshold, (int, float)) else "--min-coverage"
    names = features.get("name") or [str(k) for k in range(len(features["coverage"]))]
    excluded = features.get("excluded") or ["n/a"] * len(names)
    rows = [[name, cov, why] for name, cov, why in zip(names, features["coverage"], excluded) if why != "n/a"]
    coverage = _floats(features["coverage"])
    lowest = f"lowest coverage {np.nanmin(coverage):.3f}" if np.isfinite(coverage).any() else "coverage n/a"
    if not rows:
        return (f"<p class='muted'>Region coverage by the mask: every region reaches {html.escape(rule)} "
                f"({lowest}); none is a NaN column.</p>")
    return (f"<p class='warn'>{len(rows)} of {len(names)} regions are covered by the mask less than "
            f"{html.escape(rule)} requires: their columns are NaN in every output of this run (never the mean of "
            "the few voxels inside).</p>" + table(rows, header=["region", "coverage (fraction)", "why"]))


def _features(run: RunFiles) -> dict[str, list[str]]:
    features = run.run.features
    return {h: features.text(h) for h in features.header}


def _structures(run: RunFiles) -> list[str]:
    """The ``structure`` of each column (grayordinate runs), empty when the features table has none."""
    features = run.run.features
    return features.text("structure") if "structure" in features else []


def _carpet_figure(run: RunFiles, data) -> str:
    if data is None:
        return "<p class='muted'>No carpet data (report data missing): rerun the participant level.</p>"
    kept = run.run.kept
    groups = []
    structures = _structures(run)
    if structures:
        col_structure = [structures[c] for c in data["columns"]]
        groups = [(s.removeprefix("CIFTI_STRUCTURE_").lower(), i) for i, s in enumerate(col_structure)
                  if i == 0 or s != col_structure[i - 1]]
    dp = run.meta.get("DenoiseParameters") or {}
    threshold = dp.get("fd_threshold") if "scrub" in dp.get("components", []) else None
    drawn = figures.carpet_plot(dequantize(data["before"]), dequantize(data["after"]),
                                t_r=run.meta["RepetitionTime"], start_time=run.meta.get("StartTime", 0.0),
                                fd=run.run.framewise_displacement, dvars_before=data["dvars_before"],
                                dvars_after=data["dvars_after"], censored=~kept, fd_threshold=threshold,
                                n_features=run.meta["Shape"][1], groups=groups)
    return figure(drawn, "carpet plot before and after cleaning", "Framewise displacement, standardized DVARS "
                  "(Nichols 2013; over every column) and the carpet of up to 2,000 columns in the features "
                  "table's order, each z-scored, before and after cleaning; censored volumes in red.", fmt="svg")


def _trial_figure(run: RunFiles) -> str:
    trials = run.meta.get("Trials") or {}
    path = run.get("_trials.tsv")
    if trials.get("NTrials") is None or path is None:
        return ""
    header, rows = read_tsv(path)
    col = {h: [r[j] for r in rows] for j, h in enumerate(header)}
    t_r, start = run.meta["RepetitionTime"], run.meta.get("StartTime", 0.0)
    onset = run.onsets
    censored = onset[~run.run.kept]
    drawn = figures.trial_timeline(_floats(col["onset"]), _floats(col["duration"]), col["trial_type"],
                                   np.array(col["valid"]) == "True", window=tuple(trials["TrialWindow"]),
                                   run_start=start, run_end=start + len(onset) * t_r, censored_times=censored,
                                   t_r=t_r)
    return figure(drawn, "trial timeline", f"Events of the run by trial type: {trials['NValidTrials']} of "
                  f"{trials['NTrials']} trials with a valid segment (red: invalid, e.g. a censored volume in the "
                  "window).", fmt="svg")


def read_relmat(path: Path) -> tuple[np.ndarray, list[str]]:
    """A ``_relmat.tsv`` connectivity matrix: a header of region names, and optionally a first column of
    names."""
    header, rows = read_tsv(path)
    named = bool(rows) and len(rows[0]) == len(header) and len(header) == len(rows) + 1
    values = np.array([[np.nan if v == "n/a" else float(v) for v in (r[1:] if named else r)] for r in rows])
    return values, header[1:] if named else header


def _connectivity_figures(run: RunFiles) -> list[str]:
    out = []
    for name, path in sorted(run.outputs.items()):
        if not name.endswith("_relmat.tsv"):
            continue
        matrix, names = read_relmat(path)
        measure = next((p[5:] for p in name.split("_") if p.startswith("meas-")), "connectivity")
        unit = "covariance of the cleaned columns" if "ovariance" in measure else "r"
        out.append(figure(figures.connectivity_matrix(matrix, names, measure=measure, unit=unit),
                          f"connectivity matrix {measure}", f"{name}: {matrix.shape[0]} regions.", fmt="svg"))
    return out


def run_section(sidecar: Path) -> str:
    """HTML of one run: summary, QC metrics with units, and its figures."""
    run = read_run(sidecar)
    data_path = run.get("_reportdata.npz")
    data = dict(np.load(data_path)) if data_path is not None else None
    parts = [f"<h2 id='{html.escape(run.stem, quote=True)}'>{html.escape(run.stem)}</h2>",
             key_values(summary_rows(run.meta, run.run.framewise_displacement, run.run.n_volumes)),
             "<h3>Quality control</h3>", qc_table(qc_metrics(run, data)),
             "<h3>Columns</h3>", coverage_section(run), _overlay_figure(run, data),
             "<h3>Signal before and after cleaning</h3>", _carpet_figure(run, data)]
    trial = _trial_figure(run)
    if trial:
        parts += ["<h3>Trials</h3>", trial]
    conn = _connectivity_figures(run)
    if conn:
        parts += ["<h3>Connectivity</h3>", *conn]
    parts.append("<details><summary>confound columns</summary><p class='muted'>"
                 + html.escape(", ".join(run.meta["ConfoundColumns"]) or "none") + "</p></details>")
    return "\n".join(parts)
