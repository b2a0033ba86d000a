"""Column descriptions of the denoising benchmark's tables (``group_denoising*.tsv``), registered in
:data:`bidsapp.outputs.descriptions.KINDS`. ``settings`` holds the group level's exclusion options."""

from __future__ import annotations

_STRATEGY = {
    "desc": {"Description": "desc- entity of the runs: the denoising strategy (or the --desc variant) compared."},
    "atlas": {"Description": "atlas- entity of the runs: the regions whose connectivity is compared."},
    "space": {"Description": "space- entity of the runs (func: native BOLD grid)."},
}


def _rule(settings: dict) -> str:
    fd_mean, frac = settings.get("exclude_fd_mean", 0.25), settings.get("exclude_censored_fraction", 0.8)
    thr = settings.get("exclude_fd_threshold", 0.2)
    parts = ([f"mean framewise displacement > {fd_mean:g} mm (--exclude-fd-mean)"] if fd_mean is not None else []) \
        + ([f"more than {100 * frac:g}% of volumes with framewise displacement > {thr:g} mm "
            "(--exclude-censored-fraction, --exclude-fd-threshold)"] if frac is not None else [])
    return " or ".join(parts) or "no rule (both criteria off)"


def group_denoising(settings: dict) -> dict[str, dict]:
    """``group_denoising.tsv``: one row per strategy x atlas x space."""
    qcfc = ("QC-FC: for each edge (pair of regions), the correlation across participants between its "
            "connectivity (the correlation of the two regions' cleaned time series from the Ledoit-Wolf covariance, "
            "as nilearn's ConnectivityMeasure and the benchmark's code: the values of meas-PearsonCorrelation "
            "_relmat files without --fisher-z, recomputed from each run's array; averaged over the participant's "
            "kept runs) and the participant's mean framewise displacement (over those runs' volumes), partial on "
            "the covariates")
    return {  # in the order of the table's columns
        "desc": _STRATEGY["desc"],
        "denoise": {"Description": "Denoising strategy of the runs (--denoise, from their sidecars)."},
        "atlas": _STRATEGY["atlas"],
        "space": _STRATEGY["space"],
        "n_regions": {"Description": "Regions (columns) of any of the runs; a region some participants lack (not a "
                                     "column of their runs, or a column of NaN by --min-coverage) is compared over "
                                     "the others (see note and n_participants of group_denoising_edges.tsv)."},
        "n_runs": {"Description": "Runs of this strategy and atlas read (excluded ones included)."},
        "n_runs_excluded": {"Description": f"Runs left out by the exclusion rule: {_rule(settings)}."},
        "n_participants": {"Description": "Participants with at least one kept run: the sample of QC-FC (an edge "
                                          "whose region some of them lack uses fewer; see note)."},
        "covariates": {"Description": "Covariates partialled out of QC-FC, from participants.tsv of the raw dataset "
                                      "(age, and sex as a 0/1 column per level but the first); none when a value "
                                      "is missing (see note)."},
        "qcfc_edges": {"Description": "Edges with a QC-FC value (an edge with a constant region has none)."},
        "qcfc_significant_percent": {"Description": f"{qcfc}: percent of edges with p < 0.05, uncorrected "
                                                    "(two-sided t-test, n - 2 - k degrees of freedom).",
                                     "Units": "%"},
        "qcfc_fdr_significant_percent": {"Description": "Percent of edges whose QC-FC is significant at a false "
                                                        "discovery rate of 0.05 (Benjamini-Hochberg over the edges).",
                                         "Units": "%"},
        "qcfc_median_abs": {"Description": "Median over edges of the absolute QC-FC (0: no motion left)."},
        "distance_dependence": {"Description": "Spearman correlation between the QC-FC of each edge and the "
                                               "Euclidean distance between its regions' centroids (negative: "
                                               "motion inflates short-range connectivity)."},
        "distance_dependence_p": {"Description": "p-value of distance_dependence (scipy.stats.spearmanr)."},
        "dof_lost_mean": {"Description": "Mean over kept runs of the temporal degrees of freedom lost: volumes "
                                         "minus the degrees of freedom left after cleaning (censored volumes, "
                                         "confound regressors, filter, detrend, mean).", "Units": "degrees of freedom"},
        "dof_lost_percent_mean": {"Description": "Mean over kept runs of the degrees of freedom lost as a percent "
                                                 "of the run's volumes.", "Units": "%"},
        "note": {"Description": "What could not be computed and why (a single strategy, too few participants, no "
                                "covariates, no centroids, regions some participants lack and over how many "
                                "participants their edges are compared); n/a when everything was."},
    }


def group_denoising_runs(settings: dict) -> dict[str, dict]:
    """``group_denoising_runs.tsv``: one row per run and strategy."""
    return {
        "run": {"Description": "File name stem of the run's outputs (entities up to desc)."},
        "participant_id": {"Description": "Participant of the run (sub-<label>)."},
        **_STRATEGY,
        "fd_mean": {"Description": "Mean framewise displacement over the volumes after the non-steady-state ones "
                                   "(fMRIPrep's framewise_displacement; the fd_mean of group_runs.tsv and "
                                   "QC.FramewiseDisplacementMean of the run's sidecar).", "Units": "mm"},
        "high_motion_fraction": {"Description": "Share of the same volumes (those with a framewise "
                                                "displacement: not a run's first volume, whose FD is n/a) with "
                                                "framewise displacement > "
                                                f"{settings.get('exclude_fd_threshold', 0.2):g} mm "
                                                "(--exclude-fd-threshold), what --exclude-censored-fraction reads: "
                                                "the volumes scrubbing at that threshold would censor, the same "
                                                "for every strategy. Not censored_fraction of group_runs.tsv (the "
                                                "volumes the run's own strategy censored).", "Units": "fraction"},
        "excluded": {"Description": f"Whether the run is left out of the benchmark: {_rule(settings)}. Decided "
                                    "from framewise displacement only, so the same runs for every strategy.",
                     "Levels": {"True": "left out", "False": "kept"}},
        "exclusion_reason": {"Description": "Why the run is left out; n/a when kept."},
        "n_volumes": {"Description": "Volumes in the preprocessed BOLD run."},
        "dof": {"Description": "Degrees of freedom left after cleaning (DegreesOfFreedom of the run's sidecar; "
                               "the dof of group_runs.tsv).", "Units": "degrees of freedom"},
        "dof_lost": {"Description": "n_volumes - dof (the dof_lost of group_runs.tsv).",
                     "Units": "degrees of freedom"},
        "dof_lost_percent": {"Description": "dof_lost as a percent of n_volumes.", "Units": "%"},
    }


def group_denoising_edges(settings: dict) -> dict[str, dict]:
    """``group_denoising_edges.tsv``: one row per edge and strategy (QC-FC histograms, distance plots)."""
    return {
        **_STRATEGY,
        "region_a": {"Description": "Name of the edge's first region (features.tsv 'name'; row of the upper "
                                    "triangle)."},
        "region_b": {"Description": "Name of the edge's second region (column of the upper triangle)."},
        "distance": {"Description": "Euclidean distance between the two regions' centroids, each the median over "
                                    "the strategy's runs of the region's centroid in their features.tsv (the "
                                    "atlas's centroid, the same for every run, whatever one mask cuts off); n/a "
                                    "without centroids.", "Units": "mm"},
        "n_participants": {"Description": "Participants the edge's QC-FC is computed over: those with a kept run "
                                          "holding both regions (0 when not computed)."},
        "qcfc": {"Description": "QC-FC of the edge: correlation across participants between its connectivity "
                                "and mean framewise displacement, partial on the covariates of "
                                "group_denoising.tsv; n/a when not computed."},
        "qcfc_p": {"Description": "Two-sided p-value of qcfc (t-test, n - 2 - k degrees of freedom)."},
        "qcfc_fdr_significant": {"Description": "Whether qcfc is significant at a false discovery rate of 0.05 "
                                                "(Benjamini-Hochberg over the strategy's edges).",
                                 "Levels": {"True": "significant", "False": "not significant"}},
    }


KINDS = {"group_denoising": group_denoising, "group_denoising_runs": group_denoising_runs,
         "group_denoising_edges": group_denoising_edges}
