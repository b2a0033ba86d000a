"""BIDS column descriptions: the JSON sidecar of every TSV table bidsapp writes.

BIDS tabular files document their columns in a JSON file with the same name:
``{"onset": {"Description": ..., "Units": "s"}, ...}``. Every column of
``_samples.tsv``, ``_features.tsv``, ``_trials.tsv``, ``_betas.tsv`` and
``group_runs.tsv`` is described here, in one place (the denoising benchmark's ``group_denoising*.tsv``
in :mod:`bidsapp.outputs.benchmark_descriptions`); columns copied from the
run's ``events.tsv`` are marked as such.
"""

from __future__ import annotations

import json
from pathlib import Path

from bidsapp.core.files import write_text
from bidsapp.core.tsv import read_tsv_header
from bidsapp.outputs.benchmark_descriptions import KINDS as BENCHMARK_KINDS


def _bool(description: str, true: str, false: str) -> dict:
    return {"Description": description, "Levels": {"True": true, "False": false}}


def _common_trial_columns(settings: dict) -> dict[str, dict]:
    return {
        "index": {"Description": "Row of the run's events.tsv (0-based); the trial number used in the "
                                 "'trial' column of _samples.tsv."},
        "onset": {"Description": "Onset of the trial, copied from events.tsv (from the first stored volume).",
                  "Units": "s"},
        "duration": {"Description": "Duration of the trial, copied from events.tsv.", "Units": "s"},
        "trial_type": {"Description": "Condition of the trial, copied from events.tsv."},
    }


def _samples(settings: dict) -> dict[str, dict]:
    lag = settings.get("hrf_lag") or 0
    return {
        "volume": {"Description": "Index of the volume in the preprocessed BOLD run (0-based)."},
        "onset": {"Description": "Acquisition time of the volume: StartTime + volume * RepetitionTime "
                                 "(StartTime and RepetitionTime are in the _timeseries.json sidecar).",
                  "Units": "s"},
        "kept": _bool("Whether the volume is a row of the array (False: censored).",
                      "kept: a row of _timeseries.npy", "censored: not in the array"),
        "row": {"Description": "Row of _timeseries.npy holding this volume (0-based); n/a when censored."},
        "framewise_displacement": {
            "Description": "Framewise displacement (Power et al. 2012) from fMRIPrep's confounds TSV; "
                           "n/a for the first volume.", "Units": "mm"},
        "non_steady_state": _bool("Volume censored as non-steady-state, with every denoising strategy "
                                  "(--dummy-scans: fMRIPrep's non_steady_state_outlier columns, or the first N).",
                                  "non-steady-state", "steady state"),
        "motion_outlier": _bool("Volume censored by the denoising strategy's scrubbing (framewise "
                                "displacement / std DVARS thresholds, with neighbours and short segments).",
                                "motion outlier (censored)", "not a motion outlier"),
        "trial": {"Description": "events.tsv row(s) (the 'index' of _trials.tsv) whose window "
                                 f"[onset + {lag:g} s, onset + {lag:g} s + max(duration, TR)) contains the "
                                 "volume's onset (--hrf-lag); comma-separated when trials overlap; n/a if none."},
        "trial_type": {"Description": "trial_type of the trial(s) in the 'trial' column, comma-separated; "
                                      "n/a if none."},
    }


def _features(settings: dict, header: list[str], space: str | None) -> dict[str, dict]:
    """Columns of a features table: what the run's column space says (``ColumnSpace`` of the sidecar); without it,
    the first kind whose table has every column of the header."""
    from bidsapp.core import columns as spaces

    if space is not None:
        return spaces.get(space).feature_descriptions()
    for cls in spaces.KINDS.values():
        if set(header) <= set(cls.feature_descriptions()):
            return cls.feature_descriptions()
    return {}


def _trials(settings: dict) -> dict[str, dict]:
    return {
        **_common_trial_columns(settings),
        "n_censored": {"Description": "Number of censored volumes that the samples of the trial's segment would "
                                      "need (kept neighbours of censored volumes are not counted)."},
        "outside_run": _bool("Whether a sample of the trial's segment falls before the first or after the last "
                             "volume of the run.", "some sample outside the run", "every sample inside the run"),
        "valid": _bool("Whether the trial's segment has no missing sample (no censored volume, inside the run).",
                       "complete segment", "segment has NaN samples or is left out (--trial-edge)"),
        "segment": {"Description": "Index of the trial in the first axis of _trials.npy; n/a when the trial "
                                   "was left out (--trial-edge drop)."},
    }


def _betas(settings: dict) -> dict[str, dict]:
    return {
        **_common_trial_columns(settings),
        "response_retained": {"Description": "Share of the trial's modelled response energy (HRF regressor "
                                             "squared) that falls in kept volumes of the run, out of its whole "
                                             "response; low when censoring hides it or it falls after the run's "
                                             "end.",
                              "Units": "ratio"},
        "variance_inflation": {"Description": "Variance of the trial's beta relative to that of the trial "
                                              "regressor alone on the raw kept volumes; large when cleaning "
                                              "removed the regressor or other regressors are collinear with it.",
                               "Units": "ratio"},
        "variance_factor": {"Description": "Variance of the trial's beta per unit noise variance of a column "
                                           "(squared norm of the weights that give the beta from the cleaned "
                                           "column): a column's residual variance times this is the beta's "
                                           "variance. FIR: the largest over the trial's bins."},
        "valid": _bool("Whether the trial-wise estimate is usable: the trial starts inside the run, its "
                       "model (per trial for LSS, per run for LSA) identifies its beta with residual degrees of "
                       "freedom, variance_inflation <= 100, response_retained >= 0.5 and (FIR) every bin is "
                       "estimable; in models joining a participant's runs (optimized, --trial-ridge): the trial "
                       "starts inside the run, its regressor is not empty and response_retained >= 0.5.",
                       "usable estimate", "estimate unreliable (or NaN)"),
        "beta_variance": {"Description": "Variance of the trial's beta (median over columns): residual variance "
                                         "of the run's model times the trial's diagonal term of the unshrunk "
                                         "least-squares-all estimator's covariance (ridge shrinkage lowers the "
                                         "variance by adding bias, so it is not counted: a trial the ridge "
                                         "shrinks most does not look most precise); in the squared units of the "
                                         "cleaned data (models joining a participant's runs)."},
        "reason": {"Description": "Why the estimate is not valid (n/a when valid); rank-deficient or "
                                  "ill-conditioned models have NaN betas."},
        "fir_offset": {"Description": "--hrf fir: the FIR bin of this row, seconds from the trial's onset (a bin "
                                      "holds the volumes within half a TR of onset + offset); one row per trial "
                                      "and bin.", "Units": "s"},
    }


def _hrf(settings: dict) -> dict[str, dict]:
    return {
        "column": {"Description": "Column of the run's arrays (row of _features.tsv, 0-based)."},
        "r2": {"Description": "R2 of the LSA model (every trial's regressors with the column's HRF, and an "
                              "intercept) on the cleaned column: the share of its variance the trials explain.",
               "Units": "ratio"},
        **_library_columns(),
    }


def _library_columns() -> dict[str, dict]:
    """The columns of a library HRF choice (``_hrf.tsv``; ``_betaquality.tsv`` of the joined model)."""
    return {
        "hrf_shape": {"Description": "--hrf library: index (0-19) of the library shape chosen for the column "
                                     "(sidecar Trials.HRFLibrary.Shapes)."},
        "hrf_peak": {"Description": "--hrf library: peak latency of the chosen shape.", "Units": "s"},
        "hrf_undershoot_ratio": {"Description": "--hrf library: undershoot ratio of the chosen shape (0.1 shallow, "
                                                "0.35 deep).", "Units": "ratio"},
        "hrf_cv_r2": {"Description": "--hrf library: held-out R2 of an all-trials design (no trial_type values) "
                                     "with the chosen shape (sidecar Trials.HRFLibrary.Split).", "Units": "ratio"},
        "canonical_cv_r2": {"Description": "--hrf library: the same held-out R2 with the canonical-like shape 6, "
                                           "for comparison.", "Units": "ratio"},
        "hrf_fallback": _bool("--hrf library: whether no shape predicted held-out data (hrf_cv_r2 <= 0 for "
                              "all, or no cross-validation was possible) and the canonical-like shape 6 was used.",
                              "canonical-like shape used", "cross-validated choice"),
    }


def _group(settings: dict) -> dict[str, dict]:
    return {
        "run": {"Description": "File name stem of the run's outputs (entities up to desc)."},
        "space": {"Description": "space- entity of the outputs (func: native BOLD grid)."},
        "n_volumes": {"Description": "Volumes in the preprocessed BOLD run."},
        "volumes_kept": {"Description": "Rows of the run's array (volumes not censored)."},
        "n_features": {"Description": "Columns of the run's array (mask voxels or atlas regions)."},
        "mask_voxels": {"Description": "Voxels in the run's mask."},
        "denoise": {"Description": "Denoising strategy (--denoise)."},
        **_qc_columns(),
    }


def _qc_columns() -> dict[str, dict]:
    """The QC metrics of each run (the sidecar's ``QC`` object), with their units."""
    from bidsapp.core.qc import QC_COLUMNS, QC_FIELDS

    return {column: {"Description": f"{QC_FIELDS[key][1]} (sidecar QC.{key}; n/a when not computed).",
                     "Units": QC_FIELDS[key][0]} for key, column in QC_COLUMNS.items()}


def _betaquality(settings: dict) -> dict[str, dict]:
    return {
        "column": {"Description": "Column of the run's arrays (0-based; its row in _features.tsv)."},
        "r2": {"Description": "R² of the trial model with the estimates (trials and noise regressors) on the "
                              "cleaned data, over all runs of the participant and task.", "Units": "ratio"},
        "ridge_fraction": {"Description": "Fractional ridge: share of the least-squares betas' norm kept "
                                          "(1: no ridge), chosen per column by cross-validation."},
        "noise_pool": _bool("Whether the column is in the noise pool whose residuals give the noise regressors.",
                            "in the pool", "not in the pool"),
        **_library_columns(),
        "split_half_reliability": {"Description": "Correlation, across --trial-repeats values, of the mean betas "
                                                  "of two halves of each value's trials (all runs)."},
    }


KINDS = {"samples": _samples, "features": None, "trials": _trials, "betas": _betas, "hrf": _hrf,
         "betaquality": _betaquality, "group_runs": _group,
         **BENCHMARK_KINDS}  # group_denoising, group_denoising_runs, group_denoising_edges
_EXTRA = "Column of the run's events.tsv, copied unchanged (see the events.tsv JSON sidecar for its meaning)."


def describe(kind: str, header: list[str], settings: dict | None = None, space: str | None = None) -> dict[str, dict]:
    """Column descriptions of one table, in the order of its header.

    Parameters
    ----------
    kind : str
        ``samples``, ``features``, ``trials``, ``betas``, ``group_runs``, ``group_denoising``,
        ``group_denoising_runs`` or ``group_denoising_edges``.
    header : list of str
        Column names of the TSV.
    settings : dict, optional
        The run's settings (``Settings.result_settings()``), for parameter-dependent text.
    space : str, optional
        Features tables: the run's column space (``bidsapp.core.columns.KINDS``), which describes them.

    Raises
    ------
    ValueError
        For an unknown kind, or a column with no description (events.tsv columns excepted).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown table kind {kind!r}; expected one of {sorted(KINDS)}.")
    known = _features(settings or {}, header, space) if kind == "features" else KINDS[kind](settings or {})
    out = {}
    for col in header:
        if col in known:
            out[col] = known[col]
        elif kind in ("trials", "betas"):
            out[col] = {"Description": _EXTRA}
        else:
            raise ValueError(f"column {col!r} of a {kind} table has no description in bidsapp.outputs.descriptions.")
    return out


def kind_of(path: str | Path) -> str | None:
    """Table kind from a file name (``..._samples.tsv`` -> ``samples``), None when not a described table."""
    name = Path(path).name
    if name == "group_runs.tsv" or name[: -len(".tsv")] in BENCHMARK_KINDS:
        return name[: -len(".tsv")]
    for kind in ("samples", "features", "trials", "betas", "hrf", "betaquality"):
        if name.endswith(f"_{kind}.tsv"):
            return kind
    return None


def write_sidecar(tsv: str | Path, settings: dict | None = None, *, kind: str | None = None,
                  dst: str | Path | None = None, space: str | None = None) -> Path:
    """Write the column descriptions of a TSV as JSON; returns the JSON path.

    Parameters
    ----------
    tsv : str or Path
        The table (its header is read); its name gives the kind unless ``kind`` is given.
    settings : dict, optional
        The run's settings, for parameter-dependent text.
    kind : str, optional
        Table kind, when ``tsv`` is a temporary file (e.g. a node's ``samples.tsv``).
    dst : str or Path, optional
        Where to write (e.g. a staged temporary path); default ``tsv`` with a ``.json`` suffix.
    space : str, optional
        The run's column space (features tables).
    """
    tsv = Path(tsv)
    kind = kind or kind_of(tsv)
    if kind is None:
        raise ValueError(f"{tsv}: not a bidsapp table with column descriptions.")
    header = read_tsv_header(tsv)
    out = Path(dst) if dst is not None else tsv.with_suffix(".json")
    write_text(out, json.dumps(describe(kind, header, settings, space), indent=2) + "\n")
    return out
