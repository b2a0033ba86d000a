"""Group level: the denoising benchmark of an output folder, per strategy (``desc``) x atlas x space.

Runs with region columns (``--atlas`` labels or maps, ``--roi-masks``, ``--spheres``, grayordinate labels) are
read back; each run's connectivity is the correlation of its cleaned region time series from the Ledoit-Wolf
covariance (nilearn's ``ConnectivityMeasure(kind="correlation")``, as the benchmark's code; the values of the
run's ``meas-PearsonCorrelation_relmat.tsv`` without ``--fisher-z``), recomputed from the run's array whether or
not the run wrote ``_relmat`` files (:func:`run_connectivity`, the one place that chooses the source). A
participant's connectivity is the mean over its runs kept by the exclusion rule and its motion the mean FD over
those runs' volumes (after the non-steady-state ones); QC-FC is computed across participants, partialling
``age`` and ``sex`` out when ``participants.tsv`` of the raw dataset gives them for every participant. Three
tables are written (each with its JSON column descriptions):

- ``group_denoising.tsv``: one row per strategy x atlas x space, the metrics of
  :mod:`bidsapp.core.denoising_benchmark`, and a ``note`` saying what could not be computed and why;
- ``group_denoising_runs.tsv``: one row per run and strategy: motion, exclusion (and why), degrees of freedom;
- ``group_denoising_edges.tsv``: one row per edge and strategy: the regions, their distance, QC-FC and
  p-value (the data of QC-FC histograms and distance-dependence plots).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bidsapp.bids.participants import Participants
from bidsapp.core import denoising_benchmark as db
from bidsapp.core.connectivity import left_out_columns

#: column spaces whose columns are regions (connectivity between them is a benchmark edge)
REGION_KINDS = ("labels", "maps", "rois", "spheres", "grayordinate_labels")
#: entities naming a run of the source data (the rest names a processing of it)
RUN_ENTITIES = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo", "part")
TABLES = ("group_denoising.tsv", "group_denoising_runs.tsv", "group_denoising_edges.tsv")


@dataclass(frozen=True)
class ExclusionRule:
    """``--exclude-fd-mean``, ``--exclude-censored-fraction`` and ``--exclude-fd-threshold`` (None: off)."""

    fd_mean_max: float | None = db.EXCLUDE_FD_MEAN
    censored_fraction_max: float | None = db.EXCLUDE_CENSORED_FRACTION
    fd_threshold: float = db.EXCLUDE_FD_THRESHOLD


@dataclass
class BenchmarkRun:
    """What the benchmark needs of one run's outputs."""

    stem: str
    subject: str
    entities: dict
    denoise: str | None
    n_volumes: int
    dof: float
    fd: np.ndarray  # framewise displacement of the volumes after the non-steady-state ones
    connectivity: np.ndarray
    regions: list[str]
    centroids: np.ndarray | None
    left_out: tuple[str, ...] = ()  # regions left out of its connectivity (NaN by --min-coverage, or no variance)

    @property
    def key(self) -> tuple[str, str, str]:
        """(space, atlas, desc): the row of ``group_denoising.tsv`` the run belongs to."""
        return (self.entities.get("space", "func"), self.entities.get("atlas", "n/a"),
                self.entities.get("desc", "n/a"))


def run_connectivity(run) -> np.ndarray:
    """The run's connectivity edge vector: :func:`bidsapp.core.denoising_benchmark.connectivity_vector` of its
    region time series (kept volumes), the values of its ``meas-PearsonCorrelation`` ``_relmat`` file."""
    return db.connectivity_vector(np.asarray(run.X, dtype=np.float64))


def centroids_of(features) -> np.ndarray | None:
    """Region centroids (mm) from a features table: ``centroid_x/y/z`` (maps), else ``x/y/z`` (labels,
    spheres); None when absent or not finite (grayordinate labels on surfaces)."""
    for cols in (("centroid_x", "centroid_y", "centroid_z"), ("x", "y", "z")):
        if all(c in features for c in cols):
            values = features[list(cols)].to_numpy(dtype=np.float64)
            return values if np.isfinite(values).all() else None
    return None


def read_benchmark_run(load_run, sidecar: Path) -> BenchmarkRun | None:
    """One run for the benchmark (None when its columns are not regions).

    ``load_run(sidecar)`` reads the run's outputs (the one reader of the output folder).
    """
    run = load_run(sidecar)
    if run.kind not in REGION_KINDS or run.X.shape[1] < 2:
        return None
    names = run.features["name"].astype(str).tolist() if "name" in run.features else \
        [str(c) for c in run.features["column"]]
    fd = run.samples["framewise_displacement"].to_numpy(dtype=np.float64) \
        if "framewise_displacement" in run.samples else np.full(len(run.samples), np.nan)
    if "non_steady_state" in run.samples:  # the volumes the QC's fd_mean is over (sidecar QC, group_runs.tsv)
        fd = fd[~run.samples["non_steady_state"].astype(str).eq("True").to_numpy()]
    entities = dict(p.split("-", 1) for p in run.stem.split("_") if "-" in p)
    return BenchmarkRun(stem=run.stem, subject=entities["sub"], entities=entities,
                        denoise=(run.meta.get("Parameters") or {}).get("denoise"), n_volumes=len(run.samples),
                        dof=float(run.meta.get("DegreesOfFreedom", np.nan)), fd=fd,
                        connectivity=run_connectivity(run), regions=names, centroids=centroids_of(run.features),
                        left_out=tuple(n for n, gone in zip(names, left_out_columns(run.X)) if gone))


def exclusions(runs: Iterable[BenchmarkRun], rule: ExclusionRule) -> dict[str, tuple[float, float, str | None]]:
    """Per run stem: mean FD (``fd_mean``), share of volumes above the FD threshold (``high_motion_fraction``),
    both over the volumes after the non-steady-state ones, and why it is excluded (None: kept)."""
    out = {}
    for r in runs:
        mean, frac = db.mean_fd(r.fd), db.high_motion_fraction(r.fd, rule.fd_threshold)
        out[r.stem] = (mean, frac, db.exclusion_reason(mean, frac, fd_mean_max=rule.fd_mean_max,
                                                       censored_fraction_max=rule.censored_fraction_max,
                                                       fd_threshold=rule.fd_threshold))
    return out


def participant_covariates(participants: Participants | None, subjects: list[str]
                           ) -> tuple[np.ndarray | None, list[str], str | None]:
    """Age and sex (or gender) of each participant from ``participants.tsv``.

    Returns the encoded matrix (None when not usable), the names of the covariates used, and why they are not
    used (None when they are): a value missing (not listed, ``n/a``, empty) or a number that is not finite
    (``NaN``, ``inf``) for one participant leaves both covariates out (the note names the participant and the
    column).
    """
    from bidsapp.bids.participants import is_finite_or_text, is_missing

    if participants is None or not participants.rows:
        return None, [], "no participants.tsv in the raw dataset"
    lower = {k.lower(): k for k in participants.columns}
    wanted = [c for c in (lower.get("age"), lower.get("sex") or lower.get("gender")) if c]
    if not wanted:
        return None, [], "participants.tsv has no age or sex column"
    values: dict[str, list[str]] = {c: [] for c in wanted}
    for sub in subjects:
        row = participants.rows.get(f"sub-{sub}") or {}
        for c in wanted:
            v = row.get(c)
            if v is not None and not is_finite_or_text(v):
                return None, [], (f"{c} of sub-{sub} in participants.tsv is {v!r}, not a finite number (write n/a "
                                  "for a missing value)")
            if is_missing(v):
                return None, [], f"{c} missing for sub-{sub} in participants.tsv"
            values[c].append(v)
    matrix, names = db.encode_covariates(values)
    return matrix, names, None


def benchmark_rows(runs: list[BenchmarkRun], rule: ExclusionRule,
                   participants: Participants | None) -> tuple[dict, dict, dict]:
    """The three tables (dicts of columns) of the benchmark over ``runs``."""
    excl = exclusions(runs, rule)
    groups: dict[tuple, list[BenchmarkRun]] = {}
    for r in runs:
        groups.setdefault(r.key, []).append(r)
    per_atlas: dict[tuple, int] = {}
    for space, atlas, _ in groups:
        per_atlas[(space, atlas)] = per_atlas.get((space, atlas), 0) + 1
    summary: dict[str, list] = {c: [] for c in SUMMARY_COLUMNS}
    edges: dict[str, list] = {c: [] for c in EDGE_COLUMNS}
    run_rows: dict[str, list] = {c: [] for c in RUN_COLUMNS}
    for key in sorted(groups):
        row, edge_rows, run_part = _strategy(key, groups[key], excl, participants,
                                             single=per_atlas[key[:2]] == 1)
        for c in SUMMARY_COLUMNS:
            summary[c].append(row[c])
        for c in EDGE_COLUMNS:
            edges[c].extend(edge_rows[c])
        for c in RUN_COLUMNS:
            run_rows[c].extend(run_part[c])
    return summary, run_rows, edges


SUMMARY_COLUMNS = ("desc", "denoise", "atlas", "space", "n_regions", "n_runs", "n_runs_excluded", "n_participants",
                   "covariates", "qcfc_edges", "qcfc_significant_percent", "qcfc_fdr_significant_percent",
                   "qcfc_median_abs", "distance_dependence", "distance_dependence_p", "dof_lost_mean",
                   "dof_lost_percent_mean", "note")
#: one name per quantity: fd_mean, dof and dof_lost as in group_runs.tsv and the sidecar's QC object;
#: high_motion_fraction (FD above the exclusion threshold) is not the QC's censored_fraction (volumes censored)
RUN_COLUMNS = ("run", "participant_id", "desc", "atlas", "space", "fd_mean", "high_motion_fraction", "excluded",
               "exclusion_reason", "n_volumes", "dof", "dof_lost", "dof_lost_percent")
EDGE_COLUMNS = ("desc", "atlas", "space", "region_a", "region_b", "distance", "n_participants", "qcfc", "qcfc_p",
                "qcfc_fdr_significant")


def region_union(runs: list[BenchmarkRun]) -> list[str]:
    """Every region of the runs, in the order they first appear (the runs' own order when they all agree)."""
    names: list[str] = []
    seen: set[str] = set()
    for r in runs:
        for name in r.regions:
            if name not in seen:
                seen.add(name)
                names.append(name)
    return names


def aligned_connectivity(run: BenchmarkRun, regions: list[str]) -> np.ndarray:
    """The run's edge vector on the edges of ``regions``: NaN for an edge with a region the run lacks."""
    mine = np.full((len(run.regions),) * 2, np.nan)
    i, j = db.edge_index(len(run.regions))
    mine[i, j] = mine[j, i] = run.connectivity
    pos = {name: k for k, name in enumerate(regions)}
    where = np.array([pos[name] for name in run.regions], dtype=int)
    full = np.full((len(regions),) * 2, np.nan)
    full[np.ix_(where, where)] = mine
    a, b = db.edge_index(len(regions))
    return full[a, b]


def atlas_centroids(runs: list[BenchmarkRun], regions: list[str]) -> np.ndarray | None:
    """Each region's centroid (mm): the median over runs of its centroid in the run's features table.

    A run's centroid is that of the region within the run's mask, so it moves when the mask cuts the region;
    the median over runs is the atlas's centroid whatever one participant's mask does. None when no run has
    centroids (surface regions).
    """
    values: dict[str, list[np.ndarray]] = {name: [] for name in regions}
    for r in runs:
        if r.centroids is not None:
            for name, c in zip(r.regions, r.centroids):
                values[name].append(c)
    if not any(values.values()):
        return None
    return np.array([np.median(values[n], axis=0) if values[n] else np.full(3, np.nan) for n in regions])


def _run_table(runs: list[BenchmarkRun], key: tuple, excl: dict) -> tuple[dict, np.ndarray, np.ndarray]:
    """The rows of ``group_denoising_runs.tsv`` of one strategy, and each run's dof lost (count, share)."""
    space, atlas, desc = key
    dof, n_vol = np.array([r.dof for r in runs]), np.array([r.n_volumes for r in runs], float)
    lost, frac = np.full(len(runs), np.nan), np.full(len(runs), np.nan)
    known = np.isfinite(dof)  # sidecars written before DegreesOfFreedom was recorded: n/a
    if known.any():
        lost[known], frac[known] = db.dof_loss(n_vol[known], dof[known])
    rows = {"run": [r.stem for r in runs], "participant_id": [f"sub-{r.subject}" for r in runs],
            "desc": [desc] * len(runs), "atlas": [atlas] * len(runs), "space": [space] * len(runs),
            "fd_mean": [excl[r.stem][0] for r in runs], "high_motion_fraction": [excl[r.stem][1] for r in runs],
            "excluded": [excl[r.stem][2] is not None for r in runs],
            "exclusion_reason": [excl[r.stem][2] for r in runs], "n_volumes": [r.n_volumes for r in runs],
            "dof": list(dof), "dof_lost": list(lost), "dof_lost_percent": list(100 * frac)}
    return rows, lost, frac


def _strategy(key: tuple, runs: list[BenchmarkRun], excl: dict, participants, *, single: bool
              ) -> tuple[dict, dict, dict]:
    """One strategy x atlas x space: its summary row, its edges and its runs (every run read)."""
    space, atlas, desc = key
    notes = [f"only one strategy (desc) for atlas {atlas} in space {space}: nothing to compare it with"] \
        if single else []
    regions = region_union(runs)
    kept = [r for r in runs if excl[r.stem][2] is None]
    run_part, lost, frac = _run_table(runs, key, excl)
    kept_idx = [i for i, r in enumerate(runs) if excl[r.stem][2] is None]
    metrics, cov_names, edge_data = _qcfc_metrics(kept, regions, atlas_centroids(runs, regions), participants,
                                                  notes)
    denoise = sorted({r.denoise for r in runs if r.denoise})
    row = {"desc": desc, "denoise": ", ".join(denoise) or None, "atlas": atlas, "space": space,
           "n_regions": len(regions), "n_runs": len(runs), "n_runs_excluded": len(runs) - len(kept),
           "n_participants": len({r.subject for r in kept}), "covariates": ", ".join(cov_names) or "none",
           **metrics,
           "dof_lost_mean": float(np.nanmean(lost[kept_idx])) if np.isfinite(lost[kept_idx]).any() else np.nan,
           "dof_lost_percent_mean": float(np.nanmean(100 * frac[kept_idx]))
           if np.isfinite(frac[kept_idx]).any() else np.nan,
           "note": "; ".join(notes) or None}
    i, j = db.edge_index(len(regions))
    n = len(i)
    edges = {"desc": [desc] * n, "atlas": [atlas] * n, "space": [space] * n,
             "region_a": [regions[k] for k in i], "region_b": [regions[k] for k in j], **edge_data}
    return row, edges, run_part


def missing_regions_note(kept: list[BenchmarkRun], regions: list[str], subjects: list[str]) -> str | None:
    """Which regions some participants lack, and why: their edges' QC-FC is over fewer participants."""
    parts = []
    for name in regions:
        absent, uncovered = [], []
        for s in subjects:
            mine = [r for r in kept if r.subject == s]
            if not any(name in r.regions for r in mine):
                absent.append(s)
            elif all(name in r.left_out or name not in r.regions for r in mine):
                uncovered.append(s)
        if absent or uncovered:
            why = ([f"not a column of the runs of sub-{', sub-'.join(absent)}"] if absent else []) + \
                ([f"left out (a column of NaN by --min-coverage, or without variance) in every run of "
                  f"sub-{', sub-'.join(uncovered)}"] if uncovered else [])
            parts.append(f"region {name}: {' and '.join(why)}, so its edges' QC-FC is over "
                         f"{len(subjects) - len(absent) - len(uncovered)} of {len(subjects)} participants")
    return "; ".join(parts) or None


def _qcfc_metrics(kept: list[BenchmarkRun], regions: list[str], centroids: np.ndarray | None, participants,
                  notes: list[str]) -> tuple[dict, list[str], dict]:
    """QC-FC summary over the participants of ``kept`` runs, the covariates used and the per-edge columns.

    Each edge's QC-FC is over the participants that have both its regions (``n_participants`` per edge).
    """
    n_edges = db.n_edges(len(regions))
    dist = db.edge_distances(centroids) if centroids is not None else np.full(n_edges, np.nan)
    if centroids is None:
        notes.append("distance dependence: the regions have no centroids (surface regions)")
    empty = {"qcfc_edges": 0, **dict.fromkeys(("qcfc_significant_percent", "qcfc_fdr_significant_percent",
                                               "qcfc_median_abs", "distance_dependence",
                                               "distance_dependence_p"), np.nan)}
    nan = np.full(n_edges, np.nan)
    edge_data = {"distance": list(dist), "n_participants": [0] * n_edges, "qcfc": list(nan), "qcfc_p": list(nan),
                 "qcfc_fdr_significant": [None] * n_edges}
    subjects = sorted({r.subject for r in kept})
    conn = _participant_connectivity(kept, regions, subjects)
    motion = np.array([db.mean_fd(np.concatenate([r.fd for r in kept if r.subject == s])) for s in subjects])
    cov, names, why = participant_covariates(participants, subjects)
    if cov is not None and len(subjects) < db.min_participants(cov.shape[1]):
        cov, names, why = None, [], f"too few participants ({len(subjects)}) to partial out {', '.join(names)}"
    if len(subjects) < db.min_participants(0):
        notes.append(f"QC-FC needs at least {db.min_participants(0)} participants, {len(subjects)} left after "
                     "exclusion")
        return empty, names, edge_data
    if why:
        notes.append(f"QC-FC not adjusted for age and sex: {why}")
    missing = missing_regions_note(kept, regions, subjects)
    if missing:
        notes.append(missing)
    try:
        result, n_per_edge, problems = db.qcfc_by_edge(conn, motion, cov)
    except ValueError as exc:
        notes.append(f"QC-FC: {exc}")
        return empty, names, edge_data
    notes.extend(f"QC-FC: {p}" for p in problems)
    edge_data.update(n_participants=[int(v) for v in n_per_edge], qcfc=list(result.r), qcfc_p=list(result.p),
                     qcfc_fdr_significant=[None if np.isnan(p) else bool(s)
                                           for p, s in zip(result.p, db.fdr_bh(result.p))])
    return db.summarize(result, dist if centroids is not None else None), names, edge_data


def _participant_connectivity(kept: list[BenchmarkRun], regions: list[str], subjects: list[str]) -> np.ndarray:
    """Each participant's edge vector: per edge, the mean over its kept runs that have the edge (NaN: none)."""
    rows = []
    for s in subjects:
        stack = np.array([aligned_connectivity(r, regions) for r in kept if r.subject == s])
        with np.errstate(invalid="ignore"):
            have = np.isfinite(stack)
            total = np.where(have, stack, 0.0).sum(axis=0)
            count = have.sum(axis=0)
            rows.append(np.where(count > 0, total / np.maximum(count, 1), np.nan))
    return np.array(rows) if rows else np.empty((0, db.n_edges(len(regions))))


def _read_runs(sidecars: list[Path]) -> list[BenchmarkRun]:
    """The runs with region columns; a run whose outputs cannot be read is left out with one printed line."""
    from bidsapp.outputs.reader import read_run, stem_of

    runs = []
    for sc in sidecars:
        try:
            run = read_benchmark_run(read_run, sc)
        except (OSError, ValueError) as exc:
            print(f"[bidsapp] {stem_of(sc)}: left out of the denoising benchmark: {exc}")
            continue
        if run is not None:
            runs.append(run)
    return runs


def write_benchmark(output_dir: Path, sidecars: list[Path], rule: ExclusionRule,
                    participants: Participants | None) -> list[Path]:
    """Write the three ``group_denoising*.tsv`` tables (and their column descriptions) of ``sidecars``' runs,
    with the covariates of ``participants`` (the raw dataset's ``participants.tsv``; None: there is none).

    Without runs with region columns, nothing is written (tables of an earlier invocation are removed, so
    they never describe other runs) and the reason is printed. Returns the tables written.
    """
    from bidsapp.core.tsv import write_tsv
    from bidsapp.outputs.descriptions import write_sidecar

    output_dir = Path(output_dir)
    for name in TABLES:
        for old in (output_dir / name, (output_dir / name).with_suffix(".json")):
            old.unlink(missing_ok=True)
    runs = _read_runs(sidecars)
    if not runs:
        print("[bidsapp] denoising benchmark: no run has region columns (--atlas, --roi-masks, --spheres); "
              "connectivity between voxels is not compared, so nothing was written.")
        return []
    tables = benchmark_rows(runs, rule, participants)
    settings = {"exclude_fd_mean": rule.fd_mean_max, "exclude_censored_fraction": rule.censored_fraction_max,
                "exclude_fd_threshold": rule.fd_threshold}
    paths = []
    for name, columns in zip(TABLES, tables):
        paths.append(write_tsv(output_dir / name, columns))
        write_sidecar(paths[-1], settings)
    summary = tables[0]
    print(f"[bidsapp] denoising benchmark of {len(summary['desc'])} strategy x atlas combination(s) over "
          f"{len({r.subject for r in runs})} participant(s): {paths[0]}")
    for desc, note in zip(summary["desc"], summary["note"]):
        if note:
            print(f"[bidsapp] denoising benchmark, desc-{desc}: {note}")
    return paths
