"""fMRIPrep confounds -> regressors and sample mask, by named denoising strategy.

Selections equal ``nilearn.interfaces.fmriprep.load_confounds_strategy``
(same presets, defaults and column order) and also read fMRIPrep 1.0/1.1
files with CamelCase headers, which are renamed to the current spellings.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bidsapp.core.names import COMPCOR, MODELS, STRATEGIES, parse_dummy_scans  # noqa: E402,F401 (re-exported)
from bidsapp.core.tsv import read_tsv, to_float

#: nilearn's presets (``load_confounds_strategy``); parameters a user may change
PRESETS: dict[str, dict] = {
    "none": {"components": ()},
    "simple": {"components": ("high_pass", "motion", "wm_csf"), "motion": "full", "wm_csf": "basic"},
    "scrubbing": {
        "components": ("high_pass", "motion", "wm_csf", "scrub"),
        "motion": "full", "wm_csf": "full", "scrub": 5, "fd_threshold": 0.5, "std_dvars_threshold": 1.5,
    },
    "compcor": {
        "components": ("high_pass", "motion", "compcor"),
        "motion": "full", "compcor": "anat_combined", "n_compcor": "all",
    },
    "ica_aroma": {"components": ("high_pass", "wm_csf", "ica_aroma"), "wm_csf": "basic", "ica_aroma": "full"},
}
#: what ``load_confounds_strategy`` applies from the user (every key of its preset; its docstring's table marks
#: scrubbing's wm_csf as fixed, but its code applies a given one: 30 regressors with wm_csf="basic", not 36)
TUNABLE = {
    "none": set(),
    "simple": {"motion", "wm_csf", "global_signal", "demean"},
    "scrubbing": {"motion", "wm_csf", "scrub", "fd_threshold", "std_dvars_threshold", "global_signal", "demean"},
    "compcor": {"motion", "compcor", "n_compcor", "global_signal", "demean"},
    "ica_aroma": {"wm_csf", "global_signal", "demean"},
}

#: parameters that choose preset regressors (replaced by explicit columns)
REGRESSOR_PARAMETERS = {"motion", "wm_csf", "global_signal", "compcor", "n_compcor"}


def inapplicable_parameters(strategy: str, parameters: dict, columns=None) -> list[str]:
    """Names of the given (not None) strategy parameters that ``strategy`` does not use.

    With explicit ``columns``, the parameters choosing preset regressors do not apply either.
    ``demean`` is not reported (it has a default and applies whenever regressors exist).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown denoising strategy '{strategy}'; use one of {', '.join(STRATEGIES)}.")
    used = set(TUNABLE[strategy])
    if columns:
        used -= REGRESSOR_PARAMETERS
    return sorted(k for k, v in parameters.items() if v is not None and k != "demean" and k not in used)


def non_steady_state(n: int, dummy_scans="auto", table: ConfoundsTable | None = None) -> tuple[np.ndarray, str]:
    """Volumes censored as non-steady-state, whatever the denoising strategy.

    Parameters
    ----------
    n : int
        Volumes in the run.
    dummy_scans : "auto" or int
        ``"auto"``: fMRIPrep's ``non_steady_state_outlier*`` columns of ``table``
        (none censored without a confounds table or such columns); an integer:
        the first ``dummy_scans`` volumes.
    table : ConfoundsTable or None

    Returns
    -------
    flagged : numpy.ndarray of bool, shape (n,)
    source : str
        What was applied, for the sidecar.
    """
    dummy_scans = parse_dummy_scans(dummy_scans)
    flagged = np.zeros(n, dtype=bool)
    if dummy_scans != "auto":
        if dummy_scans >= n:
            raise ValueError(f"dummy_scans={dummy_scans} censors all {n} volumes of the run; lower it.")
        flagged[:dummy_scans] = True
        return flagged, f"first {dummy_scans} volume(s) (dummy_scans={dummy_scans})"
    if table is None:
        return flagged, "auto: no confounds file, no volume censored as non-steady-state"
    cols = [c for c in table.columns if "non_steady_state" in c]
    if not cols:
        return flagged, f"auto: {table.path.name} has no non_steady_state_outlier column, none censored"
    for c in cols:
        flagged |= np.nan_to_num(table.columns[c]) != 0
    return flagged, f"auto: fMRIPrep non_steady_state_outlier columns of {table.path.name}"


_CAMEL = {
    "X": "trans_x", "Y": "trans_y", "Z": "trans_z", "RotX": "rot_x", "RotY": "rot_y", "RotZ": "rot_z",
    "CSF": "csf", "WhiteMatter": "white_matter", "GlobalSignal": "global_signal",
    "stdDVARS": "std_dvars", "non-stdDVARS": "dvars", "vx-wisestdDVARS": "vx_wise_std_dvars",
    "FramewiseDisplacement": "framewise_displacement",
}
_CAMEL_NUMBERED = [
    (re.compile(r"^tCompCor(\d+)$"), "t_comp_cor_{:02d}"),
    (re.compile(r"^aCompCor(\d+)$"), "a_comp_cor_{:02d}"),
    (re.compile(r"^Cosine(\d+)$"), "cosine{:02d}"),
    (re.compile(r"^NonSteadyStateOutlier(\d+)$"), "non_steady_state_outlier{:02d}"),
    (re.compile(r"^AROMAAggrComp(\d+)$"), "aroma_motion_{:02d}"),
]


def _modern_name(name: str) -> str:
    if name in _CAMEL:
        return _CAMEL[name]
    for pattern, fmt in _CAMEL_NUMBERED:
        m = pattern.match(name)
        if m:
            return fmt.format(int(m.group(1)))
    return name


@dataclass
class ConfoundsTable:
    """A confounds TSV as columns of floats (``n/a`` -> NaN), plus its JSON."""

    path: Path
    columns: dict[str, np.ndarray]
    meta: dict | None
    n_volumes: int


def read_confounds(tsv_path: str | Path, json_path: str | Path | None = None) -> ConfoundsTable:
    """Read an fMRIPrep ``*_desc-confounds_timeseries.tsv`` (or 1.x ``_regressors.tsv``).

    Parameters
    ----------
    tsv_path : path
    json_path : path or None
        Sidecar with CompCor metadata; default: the TSV path with ``.json``.
    """
    tsv_path = Path(tsv_path)
    if not tsv_path.is_file():
        raise ValueError(f"{tsv_path}: confounds file not found.")
    header, rows = read_tsv(tsv_path)
    try:
        float(header[0])
        raise ValueError(
            f"{tsv_path}: the confounds file has no header row; it is not an fMRIPrep confounds file."
        )
    except ValueError as exc:
        if "no header" in str(exc):
            raise
    names = [_modern_name(h) for h in header]
    columns = {
        name: to_float([r[i] for r in rows], path=tsv_path, column=orig)
        for i, (name, orig) in enumerate(zip(names, header))
    }
    if json_path is None:
        json_path = tsv_path.with_name(tsv_path.name[: -len(".tsv")] + ".json")
    meta = None
    if Path(json_path).is_file():
        try:
            meta = json.loads(Path(json_path).read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{json_path}: invalid JSON ({exc}).") from exc
        meta = {_modern_name(k): v for k, v in meta.items()}
    return ConfoundsTable(path=tsv_path, columns=columns, meta=meta, n_volumes=len(rows))


@dataclass
class ConfoundSelection:
    """Selected regressors and the volumes to keep.

    Attributes
    ----------
    names : list of str
        Regressor names (nilearn's column order).
    values : numpy.ndarray, shape (n_volumes, n_regressors)
    sample_mask : numpy.ndarray of int or None
        Indices of kept volumes (None: all kept), as nilearn.
    non_steady_state : numpy.ndarray of bool, shape (n_volumes,)
    motion_outliers : numpy.ndarray of bool, shape (n_volumes,)
    parameters : dict
        Strategy parameters applied (after defaults; with explicit columns,
        only those that still apply).
    non_steady_state_source : str
        How non-steady-state volumes were found (see :func:`non_steady_state`).
    """

    names: list[str]
    values: np.ndarray
    sample_mask: np.ndarray | None
    non_steady_state: np.ndarray
    motion_outliers: np.ndarray
    parameters: dict = field(default_factory=dict)
    non_steady_state_source: str = ""


def _suffixed(base: list[str], model: str) -> list[str]:
    suffixes = {"basic": [], "derivatives": ["derivative1"], "power2": ["power2"],
                "full": ["derivative1", "power2", "derivative1_power2"]}[model]
    return base + [f"{b}_{s}" for b in base for s in suffixes]


def _require(table: ConfoundsTable, cols: list[str], strategy: str, what: str) -> list[str]:
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise ValueError(
            f"{table.path}: column(s) {missing} needed for {what} by denoising strategy "
            f"'{strategy}' are missing. Choose a lower model (e.g. motion='basic'), another strategy, "
            "or list the columns explicitly (columns=...)."
        )
    return cols


def _compcor_columns(table: ConfoundsTable, compcor: str, n_compcor, strategy: str) -> list[str]:
    if compcor not in COMPCOR:
        raise ValueError(f"Unknown compcor '{compcor}'; use one of {COMPCOR}.")
    meta = table.meta
    if meta is None:
        raise ValueError(
            f"{table.path}: CompCor needs the confounds JSON sidecar (fMRIPrep >= 1.4) next to the TSV; "
            "it is missing. Use strategy 'simple', or provide the .json file."
        )
    prefixes = {"temporal_anat_combined": ["t", "a"], "temporal_anat_separated": ["t", "a", "w", "c"],
                "temporal": ["t"], "anat_combined": ["a"], "anat_separated": ["a", "w", "c"]}[compcor]
    parts = compcor.split("_")
    masks = None if len(parts) == 1 else {"combined": ["combined"], "separated": ["WM", "CSF"]}[parts[-1]]

    def first_n(cols):
        return cols if n_compcor == "all" or n_compcor >= len(cols) else cols[:n_compcor]

    out: list[str] = []
    for prefix in prefixes:
        n = sum(f"{prefix}_comp_cor" in k for k in meta)
        cols = [f"{prefix}_comp_cor_{i:02d}" for i in range(n)]
        if prefix == "a":
            for m in masks:
                out += first_n([c for c in cols if meta.get(c, {}).get("Mask") in [m]])
        else:
            out += first_n(cols)
    return _require(table, out, strategy, f"compcor={compcor}")


def _scrub_mask(table: ConfoundsTable, scrub: int, fd: float, dvars: float, strategy: str) -> np.ndarray:
    _require(table, ["framewise_displacement", "std_dvars"], strategy, "scrubbing")
    n = table.n_volumes
    with np.errstate(invalid="ignore"):
        flagged = (table.columns["framewise_displacement"] > fd) | (table.columns["std_dvars"] > dvars)
    idx = np.flatnonzero(flagged)
    if scrub > 0 and idx.size:
        idx = list(idx)
        if idx[0] < scrub:
            idx = list(range(idx[0])) + idx
        if n - (idx[-1] + 1) < scrub:
            idx = idx + list(range(idx[-1], n))
        arr = np.asarray(idx)
        gaps = np.diff(arr)
        for i in np.flatnonzero((gaps > 1) & (gaps < scrub + 1)):
            idx += list(range(arr[i] + 1, arr[i + 1]))
        idx = np.unique(idx)
    out = np.zeros(n, dtype=bool)
    out[np.asarray(idx, dtype=int)] = True
    return out


def _all_censored(table: ConfoundsTable, strategy: str, params: dict, nss: np.ndarray, outliers: np.ndarray,
                  dummy_scans) -> str:
    """Why every volume is censored, by cause with counts (a volume may have several), and the fix."""
    causes, fixes = [], []
    if outliers.any():
        with np.errstate(invalid="ignore"):
            fd = table.columns["framewise_displacement"] > float(params["fd_threshold"])
            dvars = table.columns["std_dvars"] > float(params["std_dvars_threshold"])
        short = outliers & ~(fd | dvars)
        causes += [f"{int(fd.sum())} with framewise displacement above fd_threshold={params['fd_threshold']} mm"
                   if fd.any() else "",
                   f"{int(dvars.sum())} with std_dvars above std_dvars_threshold={params['std_dvars_threshold']}"
                   if dvars.any() else "", f"{int(short.sum())} in segments shorter than scrub={params['scrub']}"
                   if short.any() else ""]
        fixes += ["raise the thresholds (fd_threshold, std_dvars_threshold)", "use a strategy without scrubbing"]
    if nss.any():
        causes.append(f"{int(nss.sum())} non-steady-state (dummy_scans={parse_dummy_scans(dummy_scans)})")
        fixes.append("lower dummy_scans")
    return (f"{table.path.name}: strategy '{strategy}' censors all {table.n_volumes} volumes "
            f"({', '.join(c for c in causes if c)}); {', '.join(fixes)}, or exclude this run.")


@dataclass
class RunDesign:
    """What cleaning a run takes from its confounds file and the settings, besides the signals: one rule for the
    cleaning node and for the planning of a run (:func:`run_design`).

    Attributes
    ----------
    selection : ConfoundSelection or None
        None without a confounds file.
    framewise_displacement : numpy.ndarray, shape (n_volumes,), or None
        None when the file has no such column (or there is no file).
    confounds : numpy.ndarray, shape (n_volumes, n_regressors), or None
        The regressors (None when none is selected).
    sample_mask : numpy.ndarray of int or None
        Indices of the kept volumes (None: all kept).
    non_steady_state : numpy.ndarray of bool, shape (n_volumes,)
    non_steady_state_source : str
    """

    selection: ConfoundSelection | None
    framewise_displacement: np.ndarray | None
    confounds: np.ndarray | None
    sample_mask: np.ndarray | None
    non_steady_state: np.ndarray
    non_steady_state_source: str

    @property
    def n_kept(self) -> int:
        """Volumes kept by censoring."""
        return self.non_steady_state.size if self.sample_mask is None else int(self.sample_mask.size)


def run_design(n_volumes: int, confounds_file=None, confounds_json=None, denoise: str = "simple",
               columns: list[str] | None = None, dummy_scans="auto", strategy_params: dict | None = None
               ) -> RunDesign:
    """The confounds and the censoring of a run of ``n_volumes`` volumes, as cleaning uses them.

    Parameters
    ----------
    n_volumes : int
        Volumes of the BOLD run (its header says it; the data are not needed).
    confounds_file, confounds_json : path or None
        The run's fMRIPrep confounds TSV and JSON (None: no file is used).
    denoise, columns, dummy_scans, strategy_params
        As :func:`select_confounds` (``denoise``: the strategy; ``strategy_params``: its parameters).

    Raises
    ------
    ValueError
        A confounds file of another length, missing columns, every volume censored, or a strategy that needs
        the file without one.
    """
    n = int(n_volumes)
    if confounds_file:
        table = read_confounds(confounds_file, confounds_json)
        if table.n_volumes != n:
            raise ValueError(f"{confounds_file}: {table.n_volumes} rows but the BOLD run has {n} volumes; the "
                             "confounds file belongs to another run or was truncated.")
        selection = select_confounds(table, denoise, columns=columns or None, dummy_scans=dummy_scans,
                                     **(strategy_params or {}))
        return RunDesign(selection, table.columns.get("framewise_displacement"),
                         selection.values if selection.names else None, selection.sample_mask,
                         selection.non_steady_state, selection.non_steady_state_source)
    if denoise != "none" or columns:
        raise ValueError(f"Denoising strategy '{denoise}' needs the run's confounds file.")
    nss, nss_source = non_steady_state(n, dummy_scans, None)
    return RunDesign(None, None, None, np.flatnonzero(~nss) if nss.any() else None, nss, nss_source)


def resolve_parameters(strategy: str, **user) -> dict:
    """Strategy parameters after nilearn's defaults; unknown strategy -> ValueError."""
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown denoising strategy '{strategy}'; use one of {', '.join(STRATEGIES)}.")
    params = {k: v for k, v in PRESETS[strategy].items()}
    params["demean"] = True
    for key, value in user.items():
        if value is None:
            continue
        if key not in TUNABLE[strategy]:
            continue  # not used by this strategy (as nilearn, which only warns)
        params[key] = value
    comps = list(params["components"])
    if params.get("global_signal") is not None and strategy != "none":
        comps.append("global_signal")
    params["components"] = tuple(comps)
    for key in ("motion", "wm_csf", "global_signal"):
        if key in params and params[key] is not None and params[key] not in MODELS:
            raise ValueError(f"Unknown {key} model '{params[key]}'; use one of {MODELS}.")
    return params


def _preset_columns(table: ConfoundsTable, params: dict, strategy: str) -> list[str]:
    """The regressor columns a strategy's components select (cosines, motion, WM/CSF, global signal, CompCor)."""
    comps = params["components"]
    selected: list[str] = []
    if "high_pass" in comps:
        selected += [c for c in table.columns if "cosine" in c]
    if "motion" in comps:
        base = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
        selected += _require(table, _suffixed(base, params["motion"]), strategy, f"motion={params['motion']}")
    if "wm_csf" in comps:
        selected += _require(table, _suffixed(["csf", "white_matter"], params["wm_csf"]), strategy,
                             f"wm_csf={params['wm_csf']}")
    if "global_signal" in comps:
        selected += _require(table, _suffixed(["global_signal"], params["global_signal"]), strategy,
                             f"global_signal={params['global_signal']}")
    if "compcor" in comps:
        selected += _compcor_columns(table, params["compcor"], params["n_compcor"], strategy)
    return selected


def _regressor_values(table: ConfoundsTable, names: list[str], sample_mask: np.ndarray | None,
                      demean: bool) -> np.ndarray:
    """The (n_volumes, n_regressors) matrix of ``names``: the first row's n/a (derivatives) filled from the
    second, other n/a an error; demeaned over the kept volumes (``sample_mask``, None: all) when ``demean``."""
    n = table.n_volumes
    values = np.column_stack([table.columns[c] for c in names]) if names else np.zeros((n, 0))
    values = values.copy()
    if values.size:
        if n > 1:
            first_nan = np.isnan(values[0])
            values[0, first_nan] = values[1, first_nan]
        bad = [names[j] for j in np.flatnonzero(~np.isfinite(values).all(axis=0))]
        if bad:
            raise ValueError(f"{table.path}: confound column(s) {bad} have n/a values beyond the first row.")
        if demean:
            ref = values if sample_mask is None else values[sample_mask]
            values = values - ref.mean(axis=0)
    return values


def select_confounds(
    table: ConfoundsTable,
    strategy: str = "simple",
    *,
    columns: list[str] | None = None,
    dummy_scans="auto",
    **parameters,
) -> ConfoundSelection:
    """Select regressors and censored volumes like nilearn's ``load_confounds_strategy``.

    Parameters
    ----------
    table : ConfoundsTable
        From :func:`read_confounds`.
    strategy : {"none", "simple", "scrubbing", "compcor", "ica_aroma"}
        Preset. ``none`` selects no regressor (non-steady-state volumes are
        still censored, as ``load_confounds(strategy=())``).
    columns : list of str or None
        Explicit regressor columns, used instead of the preset's regressors
        (scrubbing still applies with ``scrubbing``).
    dummy_scans : "auto" or int
        Non-steady-state censoring, for every strategy (:func:`non_steady_state`).
    **parameters
        motion, wm_csf, global_signal, scrub, fd_threshold,
        std_dvars_threshold, compcor, n_compcor, demean.

    Returns
    -------
    ConfoundSelection
    """
    params = resolve_parameters(strategy, **parameters)
    if "demean" in parameters and parameters["demean"] is not None:
        params["demean"] = bool(parameters["demean"])
    n = table.n_volumes
    comps = params["components"]
    selected = _require(table, list(columns), strategy, "the explicit confound columns") if columns \
        else _preset_columns(table, params, strategy)
    nss, nss_source = non_steady_state(n, dummy_scans, table)
    nss_cols = [c for c in table.columns if "non_steady_state" in c]
    outliers = np.zeros(n, dtype=bool)
    if "scrub" in comps:
        outliers = _scrub_mask(table, int(params["scrub"]), float(params["fd_threshold"]),
                               float(params["std_dvars_threshold"]), strategy)
    has_outlier_cols = (bool(nss_cols) and parse_dummy_scans(dummy_scans) == "auto") or nss.any() or outliers.any()
    flagged = nss | outliers
    sample_mask = np.flatnonzero(~flagged) if has_outlier_cols else None
    if sample_mask is not None and sample_mask.size == 0:
        raise ValueError(_all_censored(table, strategy, params, nss, outliers, dummy_scans))
    names = sorted(set(selected) - {c for c in selected if "non_steady_state" in c or "motion_outlier" in c})
    values = _regressor_values(table, names, sample_mask, params["demean"])
    applied = dict(params)
    if columns:
        applied = {k: v for k, v in params.items() if k not in REGRESSOR_PARAMETERS}
        applied["components"] = tuple(c for c in params["components"] if c == "scrub")
        applied["columns"] = tuple(columns)
    applied["dummy_scans"] = parse_dummy_scans(dummy_scans)
    return ConfoundSelection(
        names=names, values=values, sample_mask=sample_mask, non_steady_state=nss,
        motion_outliers=outliers, parameters=applied, non_steady_state_source=nss_source,
    )
