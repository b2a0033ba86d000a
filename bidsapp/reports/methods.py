"""Methods text (``logs/CITATION.md``, ``logs/CITATION.bib``) written from the run sidecars, so that it says
what was actually done (the settings recorded in each run's ``_timeseries.json``), in the style of
fMRIPrep's boilerplate: paragraphs a user may paste into a methods section, with references."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

#: number of regressors of each expansion of 6 motion parameters / of one signal (nilearn's models)
_EXPANSION = {"basic": ("", 1), "derivatives": (" and their temporal derivatives", 2),
              "power2": (" and their squares", 2), "full": (", their temporal derivatives and the squares of both", 4)}

REFERENCES = {
    "fmriprep": ("Esteban O, Markiewicz CJ, Blair RW, et al. fMRIPrep: a robust preprocessing pipeline for "
                 "functional MRI. Nature Methods 16, 111-116 (2019). doi:10.1038/s41592-018-0235-4",
                 "@article{fmriprep,\n  author = {Esteban, Oscar and Markiewicz, Christopher J. and Blair, Ross W. "
                 "and others},\n  title = {{fMRIPrep}: a robust preprocessing pipeline for functional {MRI}},\n"
                 "  journal = {Nature Methods},\n  volume = {16},\n  pages = {111--116},\n  year = {2019},\n"
                 "  doi = {10.1038/s41592-018-0235-4}\n}"),
    "nipype": ("Gorgolewski K, Burns CD, Madison C, et al. Nipype: a flexible, lightweight and extensible "
               "neuroimaging data processing framework in Python. Frontiers in Neuroinformatics 5, 13 (2011). "
               "doi:10.3389/fninf.2011.00013",
               "@article{nipype,\n  author = {Gorgolewski, Krzysztof and Burns, Christopher D. and Madison, Cindee "
               "and others},\n  title = {Nipype: a flexible, lightweight and extensible neuroimaging data "
               "processing framework in Python},\n  journal = {Frontiers in Neuroinformatics},\n  volume = {5},\n"
               "  pages = {13},\n  year = {2011},\n  doi = {10.3389/fninf.2011.00013}\n}"),
    "nilearn": ("Abraham A, Pedregosa F, Eickenberg M, et al. Machine learning for neuroimaging with scikit-learn. "
                "Frontiers in Neuroinformatics 8, 14 (2014). doi:10.3389/fninf.2014.00014",
                "@article{nilearn,\n  author = {Abraham, Alexandre and Pedregosa, Fabian and Eickenberg, Michael "
                "and others},\n  title = {Machine learning for neuroimaging with scikit-learn},\n  journal = "
                "{Frontiers in Neuroinformatics},\n  volume = {8},\n  pages = {14},\n  year = {2014},\n"
                "  doi = {10.3389/fninf.2014.00014}\n}"),
    "wang2024": ("Wang HT, Meisler SL, Sharmarke H, et al. Continuous evaluation of denoising strategies in "
                 "resting-state fMRI connectivity using fMRIPrep and Nilearn. PLOS Computational Biology 20, "
                 "e1011942 (2024). doi:10.1371/journal.pcbi.1011942",
                 "@article{wang2024,\n  author = {Wang, Hao-Ting and Meisler, Steven L. and Sharmarke, Hanad and "
                 "others},\n  title = {Continuous evaluation of denoising strategies in resting-state {fMRI} "
                 "connectivity using {fMRIPrep} and {Nilearn}},\n  journal = {PLOS Computational Biology},\n"
                 "  volume = {20},\n  pages = {e1011942},\n  year = {2024},\n  doi = {10.1371/journal.pcbi.1011942}"
                 "\n}"),
    "satterthwaite2013": ("Satterthwaite TD, Elliott MA, Gerraty RT, et al. An improved framework for confound "
                          "regression and filtering for control of motion artifact in the preprocessing of "
                          "resting-state functional connectivity data. NeuroImage 64, 240-256 (2013). "
                          "doi:10.1016/j.neuroimage.2012.08.052",
                          "@article{satterthwaite2013,\n  author = {Satterthwaite, Theodore D. and Elliott, Mark A. "
                          "and Gerraty, Raphael T. and others},\n  title = {An improved framework for confound "
                          "regression and filtering for control of motion artifact in the preprocessing of "
                          "resting-state functional connectivity data},\n  journal = {NeuroImage},\n  volume = "
                          "{64},\n  pages = {240--256},\n  year = {2013},\n  doi = {10.1016/j.neuroimage.2012.08.052}"
                          "\n}"),
    "power2014": ("Power JD, Mitra A, Laumann TO, et al. Methods to detect, characterize, and remove motion "
                  "artifact in resting state fMRI. NeuroImage 84, 320-341 (2014). "
                  "doi:10.1016/j.neuroimage.2013.08.048",
                  "@article{power2014,\n  author = {Power, Jonathan D. and Mitra, Anish and Laumann, Timothy O. and "
                  "others},\n  title = {Methods to detect, characterize, and remove motion artifact in resting "
                  "state {fMRI}},\n  journal = {NeuroImage},\n  volume = {84},\n  pages = {320--341},\n"
                  "  year = {2014},\n  doi = {10.1016/j.neuroimage.2013.08.048}\n}"),
    "behzadi2007": ("Behzadi Y, Restom K, Liau J, Liu TT. A component based noise correction method (CompCor) for "
                    "BOLD and perfusion based fMRI. NeuroImage 37, 90-101 (2007). "
                    "doi:10.1016/j.neuroimage.2007.04.042",
                    "@article{behzadi2007,\n  author = {Behzadi, Yashar and Restom, Khaled and Liau, Joy and Liu, "
                    "Thomas T.},\n  title = {A component based noise correction method ({CompCor}) for {BOLD} and "
                    "perfusion based {fMRI}},\n  journal = {NeuroImage},\n  volume = {37},\n  pages = {90--101},\n"
                    "  year = {2007},\n  doi = {10.1016/j.neuroimage.2007.04.042}\n}"),
    "pruim2015": ("Pruim RHR, Mennes M, van Rooij D, et al. ICA-AROMA: a robust ICA-based strategy for removing "
                  "motion artifacts from fMRI data. NeuroImage 112, 267-277 (2015). "
                  "doi:10.1016/j.neuroimage.2015.02.064",
                  "@article{pruim2015,\n  author = {Pruim, Raimon H. R. and Mennes, Maarten and van Rooij, Daan "
                  "and others},\n  title = {{ICA-AROMA}: a robust {ICA}-based strategy for removing motion "
                  "artifacts from {fMRI} data},\n  journal = {NeuroImage},\n  volume = {112},\n  pages = "
                  "{267--277},\n  year = {2015},\n  doi = {10.1016/j.neuroimage.2015.02.064}\n}"),
    "ciric2017": ("Ciric R, Wolf DH, Power JD, et al. Benchmarking of participant-level confound regression "
                  "strategies for the control of motion artifact in studies of functional connectivity. "
                  "NeuroImage 154, 174-187 (2017). doi:10.1016/j.neuroimage.2017.03.020",
                  "@article{ciric2017,\n  author = {Ciric, Rastko and Wolf, Daniel H. and Power, Jonathan D. and "
                  "others},\n  title = {Benchmarking of participant-level confound regression strategies for the "
                  "control of motion artifact in studies of functional connectivity},\n  journal = {NeuroImage},\n"
                  "  volume = {154},\n  pages = {174--187},\n  year = {2017},\n"
                  "  doi = {10.1016/j.neuroimage.2017.03.020}\n}"),
    "lindquist2019": ("Lindquist MA, Geuter S, Wager TD, Caffo BS. Modular preprocessing pipelines can reintroduce "
                      "artifacts into fMRI data. Human Brain Mapping 40, 2358-2376 (2019). doi:10.1002/hbm.24528",
                      "@article{lindquist2019,\n  author = {Lindquist, Martin A. and Geuter, Stephan and Wager, "
                      "Tor D. and Caffo, Brian S.},\n  title = {Modular preprocessing pipelines can reintroduce "
                      "artifacts into {fMRI} data},\n  journal = {Human Brain Mapping},\n  volume = {40},\n"
                      "  pages = {2358--2376},\n  year = {2019},\n  doi = {10.1002/hbm.24528}\n}"),
    "mumford2012": ("Mumford JA, Turner BO, Ashby FG, Poldrack RA. Deconvolving BOLD activation in event-related "
                    "designs for multivoxel pattern classification analyses. NeuroImage 59, 2636-2643 (2012). "
                    "doi:10.1016/j.neuroimage.2011.08.076",
                    "@article{mumford2012,\n  author = {Mumford, Jeanette A. and Turner, Benjamin O. and Ashby, "
                    "F. Gregory and Poldrack, Russell A.},\n  title = {Deconvolving {BOLD} activation in "
                    "event-related designs for multivoxel pattern classification analyses},\n  journal = "
                    "{NeuroImage},\n  volume = {59},\n  pages = {2636--2643},\n  year = {2012},\n"
                    "  doi = {10.1016/j.neuroimage.2011.08.076}\n}"),
    "prince2022": ("Prince JS, Charest I, Kurzawski JW, Pyles JA, Tarr MJ, Kay KN. Improving the accuracy of "
                   "single-trial fMRI response estimates using GLMsingle. eLife 11, e77599 (2022). "
                   "doi:10.7554/eLife.77599",
                   "@article{prince2022,\n  author = {Prince, Jacob S. and Charest, Ian and Kurzawski, Jan W. and "
                   "Pyles, John A. and Tarr, Michael J. and Kay, Kendrick N.},\n  title = {Improving the accuracy of "
                   "single-trial {fMRI} response estimates using {GLMsingle}},\n  journal = {eLife},\n  volume = "
                   "{11},\n  pages = {e77599},\n  year = {2022},\n  doi = {10.7554/eLife.77599}\n}"),
    "rokem2020": ("Rokem A, Kay K. Fractional ridge regression: a fast, interpretable reparameterization of ridge "
                  "regression. GigaScience 9, giaa133 (2020). doi:10.1093/gigascience/giaa133",
                  "@article{rokem2020,\n  author = {Rokem, Ariel and Kay, Kendrick},\n  title = {Fractional ridge "
                  "regression: a fast, interpretable reparameterization of ridge regression},\n  journal = "
                  "{GigaScience},\n  volume = {9},\n  number = {12},\n  pages = {giaa133},\n  year = {2020},\n"
                  "  doi = {10.1093/gigascience/giaa133}\n}"),
    "ledoit2004": ("Ledoit O, Wolf M. A well-conditioned estimator for large-dimensional covariance matrices. "
                   "Journal of Multivariate Analysis 88, 365-411 (2004). doi:10.1016/S0047-259X(03)00096-4",
                   "@article{ledoit2004,\n  author = {Ledoit, Olivier and Wolf, Michael},\n  title = {A "
                   "well-conditioned estimator for large-dimensional covariance matrices},\n  journal = {Journal of "
                   "Multivariate Analysis},\n  volume = {88},\n  number = {2},\n  pages = {365--411},\n"
                   "  year = {2004},\n  doi = {10.1016/S0047-259X(03)00096-4}\n}"),
}

#: the response model of each --hrf choice, in words (a trial's beta is the canonical regressor's coefficient)
HRF_PHRASES = {
    "spm": "the SPM canonical haemodynamic response function (HRF)",
    "glover": "the Glover HRF (as nilearn's `glover`)",
    "spm+derivative": "the SPM canonical HRF and its time derivative (a trial's estimate is the coefficient of the "
                      "canonical regressor)",
    "spm+derivative+dispersion": "the SPM canonical HRF with its time and dispersion derivatives (a trial's "
                                 "estimate is the coefficient of the canonical regressor)",
    "fir": "a finite impulse response model (one regressor per TR bin of the trial window per trial, so one "
           "estimate per trial and bin)",
    "library": "one of 20 double-gamma HRF shapes per column, chosen by cross-validated prediction of the time "
               "series under an all-trials design, without the trial labels (an HRF library as in GLMsingle; "
               "Prince et al. 2022)",
}
#: the library in the joined trial model: one shape per column for all runs, chosen on held-out runs
JOINED_LIBRARY_PHRASE = (
    "a response function chosen for each column from a library of 20 double-gamma shapes (peak 4-7 s, shallow or "
    "deep undershoot), once for all runs of the participant and task, as the shape whose all-trials design best "
    "predicted each held-out run (no trial labels used; as GLMsingle's library step, Prince et al. 2022), before "
    "the noise regressors and ridge")
#: the measures of --connectivity, in words
CONNECTIVITY_PHRASES = {"correlation": "Pearson correlation", "partial-correlation": "partial correlation",
                        "covariance": "covariance"}


def _expansion(model: str | None, what: str, n_signals: int) -> tuple[str, int]:
    """``"6 motion parameters, their temporal derivatives ..."`` and the number of regressors."""
    words, k = _EXPANSION.get(model or "basic", ("", 1))
    return f"{what}{words}", n_signals * k


def _mask_phrase(meta: dict) -> str:
    """The mask, in words that hold for every run of a configuration (no file name, no voxel count)."""
    strategy = meta["Parameters"].get("mask_strategy")
    if strategy == "fmriprep" and str(meta.get("MaskSource", "")).startswith("intersection of"):  # a joined model
        return ("fMRIPrep's brain mask of each run, intersected across the runs whose trial estimates are fitted "
                "together (the same voxels in each)")
    if strategy == "fmriprep":
        return "fMRIPrep's brain mask of each run"
    if strategy in ("background", "epi"):
        return (f"a mask computed from each run's temporal mean (nilearn's `compute_{strategy}_mask` with its "
                "defaults)")
    return f"a template mask ({meta['MaskSource']})"


def _columns_sentence(meta: dict) -> str:
    """What the columns are and which mask bounds them."""
    kind = meta.get("ColumnSpace", "voxels")
    mask = _mask_phrase(meta)
    if kind == "voxels":
        return f"The BOLD signal of each voxel within {mask} was extracted (one column per voxel)."
    if kind in ("grayordinates", "grayordinate_labels"):
        what = "grayordinate" if kind == "grayordinates" else "region of the grayordinate atlas (mean)"
        return f"The BOLD signal of each {what} was read from the CIFTI-2 / GIFTI run (one column each)."
    return _region_columns_sentence(meta, mask) + _coverage_sentence(meta)


def _coverage_sentence(meta: dict) -> str:
    """The ``--min-coverage`` rule and the regions it turned into columns of NaN (``BIDSAppExcludedRegions``)."""
    min_coverage = meta["Parameters"].get("min_coverage")
    if min_coverage is None:
        return ""
    gone = meta.get("BIDSAppExcludedRegions") or []
    return (f" Regions covered by the mask for less than {min_coverage:g} of their extent were left out as columns "
            "of missing values (--min-coverage"
            + (f"; here {len(gone)} region{'s' * (len(gone) > 1)}: {', '.join(gone)})." if gone
               else "; no region was left out)."))


def _region_columns_sentence(meta: dict, mask: str) -> str:
    """What the region columns (labels, maps, spheres) are."""
    p, kind = meta["Parameters"], meta.get("ColumnSpace", "voxels")
    atlas = p.get("atlas_name") or p.get("atlas") or p.get("spheres") or "the atlas"
    n_cols = meta["Shape"][1]
    if kind == "labels":
        return f"The mean BOLD signal of each of the {n_cols} regions of {atlas} within {mask} was extracted."
    if kind == "maps":
        return (f"The signal of each of the {n_cols} maps of {atlas} was extracted within {mask} by least squares "
                "(as nilearn's NiftiMapsMasker).")
    radius = p.get("sphere_radius")
    return (f"The mean BOLD signal of the voxels of {mask} within {f'{radius:g} mm' if radius else 'the voxel'} of "
            f"each of the {n_cols} seeds of {atlas} was extracted (as nilearn's NiftiSpheresMasker).")


def _confounds_sentences(meta: dict) -> tuple[list[str], set[str]]:
    """The regressors, the censoring rule and their references."""
    p, dp = meta["Parameters"], meta.get("DenoiseParameters") or {}
    strategy, comps = p.get("denoise"), set(dp.get("components", []))
    refs: set[str] = set()
    if strategy == "none" and not meta["ConfoundColumns"]:
        return ["No confound was regressed out."], refs
    parts = []
    if "motion" in comps:
        text, _ = _expansion(dp.get("motion"), "the 6 head-motion parameters", 6)
        parts.append(text + " (Satterthwaite et al. 2013)")
        refs.add("satterthwaite2013")
    if "wm_csf" in comps:
        parts.append(_expansion(dp.get("wm_csf"), "the mean white-matter and CSF signals", 2)[0])
    if "global_signal" in comps:
        parts.append(_expansion(dp.get("global_signal"), "the global signal", 1)[0])
    if "compcor" in comps:
        parts.append(f"{dp.get('n_compcor', 'all')} CompCor components ({dp.get('compcor')})")
        refs.add("behzadi2007")
    if "ica_aroma" in comps:
        parts.append("the ICA-AROMA noise components (non-aggressive)")
        refs.add("pruim2015")
    if "high_pass" in comps:
        parts.append("fMRIPrep's discrete cosine drift regressors")
    total = (f" ({len(meta['ConfoundColumns'])} regressors in total, "
             + ("demeaned" if dp.get("demean", True) else "not demeaned") + ").")
    explicit = list(p.get("confounds") or [])
    if explicit:  # --confounds: these columns instead of the strategy's regressors
        out = ["Confound regressors were the columns " + ", ".join(f"`{c}`" for c in explicit)
               + " of fMRIPrep's confounds file" + (f", in place of the regressors of nilearn's `{strategy}` strategy"
                                                    if strategy != "none" else "") + total]
    else:
        out = [f"Confound regressors were taken from fMRIPrep's confounds file following nilearn's `{strategy}` "
               "denoising strategy (`load_confounds_strategy`; Wang et al. 2024; strategies benchmarked by Ciric "
               "et al. 2017): " + "; ".join(parts) + total]
        refs |= {"wang2024", "ciric2017"}
    if "scrub" in comps:
        out.append(f"Volumes with framewise displacement above {dp.get('fd_threshold')} mm or standardized DVARS "
                   f"above {dp.get('std_dvars_threshold')} were censored (scrubbing; Power et al. 2014), together "
                   f"with segments of fewer than {dp.get('scrub')} consecutive kept volumes.")
        refs.add("power2014")
    return out, refs


def _cleaning_sentence(meta: dict) -> str:
    """Detrending, filtering, regression and scaling, in nilearn's order."""
    p = meta["Parameters"]
    low, high = p.get("low_pass"), p.get("high_pass")
    steps = ["linear detrending" if p.get("detrend") else "no detrending"]
    if low is None and high is None:
        steps.append("no temporal filtering")
    elif p.get("filter") == "cosine" and meta.get("CosineDrifts") == 0:
        steps.append(f"no cosine high-pass filter at {high:g} Hz: a confound correlated above 0.9 with one of its "
                     "drift regressors (such as fMRIPrep's cosine regressors), so none was added (nilearn's rule)")
    elif p.get("filter") == "cosine":
        steps.append(f"a discrete cosine high-pass filter at {high:g} Hz")
    else:
        band = (f"band-pass {high:g}-{low:g} Hz" if low is not None and high is not None
                else f"{'low' if low is not None else 'high'}-pass {low if low is not None else high:g} Hz")
        steps.append(f"a zero-phase Butterworth {band} filter (order 5) applied to signals and confounds alike "
                     "(Lindquist et al. 2019)")
    steps.append("orthogonal regression of the confounds")
    steps.append({"zscore_sample": "z-scoring of each column", "psc": "scaling to percent signal change"}
                 .get(p.get("standardize"), "no scaling"))
    if p.get("smoothing_fwhm"):
        steps.insert(0, f"spatial smoothing ({p['smoothing_fwhm']:g} mm FWHM)")
    dummy = p.get("dummy_scans")
    nss_text = ("fMRIPrep's non-steady-state outliers" if dummy == "auto" else f"the first {dummy} volumes")
    return (f"Signals were cleaned as nilearn's `signal.clean` (Abraham et al. 2014): {', '.join(steps)}. "
            f"Non-steady-state volumes ({nss_text}) were censored.")


def _trials_sentence(meta: dict) -> tuple[str, set[str]]:
    trials = meta.get("Trials") or {}
    if trials.get("NTrials") is None:
        return "", set()
    w = trials["TrialWindow"]
    text = (f"Trials were read from the events file: each volume was labelled by the trial it falls in "
            f"(haemodynamic lag {trials.get('HRFLag', 0):g} s) and per-trial segments were cut from {w[0]:g} to "
            f"{w[1]:g} s after each onset, sampled every TR (linear interpolation between volumes); trials "
            "whose window needs a censored volume or a time outside the run were marked invalid ("
            + ("their missing samples set to NaN" if trials.get("TrialEdge") == "nan" else "and left out") + ").")
    if not trials.get("TrialEstimates"):  # the record of what was done: no estimates
        return text, set()
    params = dict(meta["Parameters"])
    params["trial_estimates"] = params.get("trial_estimates") or trials.get("TrialModel") or "lss"
    estimates, refs = trial_estimates_sentences(params)
    return " ".join([text, *estimates]), refs


def trial_estimates_sentences(p: dict) -> tuple[list[str], set[str]]:
    """The trial-wise estimates' model, response function, noise regressors, ridge and cross-validation targets,
    from the recorded settings (``Parameters``: ``trial_estimates``, ``hrf``, ``trial_denoise``, ``trial_ridge``,
    ``trial_repeats``), and their reference keys; nothing when no estimates were asked for."""
    from bidsapp.core.trial_fit import model_steps

    model = p.get("trial_estimates")
    steps = model_steps(model, p.get("trial_denoise"), bool(p.get("trial_ridge")), p.get("hrf") or "spm")
    if model is None and steps is None:
        return [], set()
    hrf = (steps or {}).get("hrf") or p.get("hrf") or "spm"
    response = JOINED_LIBRARY_PHRASE if steps and hrf == "library" else HRF_PHRASES.get(hrf, f"the `{hrf}` HRF")
    refs = {"mumford2012"} | ({"prince2022"} if hrf == "library" else set())
    if model == "optimized":
        out = ["Trial-wise response estimates were optimized in the manner of GLMsingle (Prince et al. 2022): the "
               "runs of each participant and task were fitted together with one regressor per trial per run (a "
               f"least-squares-all design; Mumford et al. 2012), using {response}, on the cleaned data."]
        refs.add("prince2022")
    elif steps is not None and steps["ridge"]:
        out = ["Trial-wise response estimates were obtained from a model of each run with one regressor per trial "
               f"(least squares all, LSA; Mumford et al. 2012), using {response}, on the cleaned data; the runs of "
               "each participant and task were fitted together."]
    elif model == "lsa":
        out = ["Trial-wise response estimates were obtained with a least-squares-all model (LSA; Mumford et al. "
               f"2012): one model per run with one regressor per trial, using {response}, on the cleaned data."]
    else:
        out = ["Trial-wise response estimates were obtained with a least-squares-separate model (LSS; Mumford et "
               "al. 2012): one model per trial, its own regressor and one regressor per trial type for the other "
               f"trials, using {response}, on the cleaned data."
               + (" The runs of each participant and task were fitted together." if steps else "")]
    if steps and steps["denoise"]:
        out.append("Data-driven noise regressors were added to the trial model: principal components of the "
                   "residuals of the columns the task does not explain (a noise pool), their number chosen for each "
                   "participant by predicting held-out runs (as GLMsingle's GLMdenoise; Prince et al. 2022).")
        refs.add("prince2022")
    if steps and steps["ridge"]:
        out.append("Each column's trial estimates were regularized by fractional ridge regression (Rokem and Kay "
                   "2020), the fraction of the least-squares estimates' norm kept chosen for each column by "
                   "cross-validation.")
        refs.add("rokem2020")
    tuned = bool(steps) or hrf == "library"
    repeats = p.get("trial_repeats")
    if tuned and repeats:
        out.append(f"Cross-validation used repeats of the same stimulus (equal values of the events column "
                   f"`{repeats}`) as targets; the trial labels to be decoded were never used.")
    elif tuned:
        out.append("Cross-validation used only label-free targets (held-out runs under an all-trials design, "
                   "held-out blocks of volumes); the trial labels were never used, so decoding the estimates is not "
                   "circular.")
    elif repeats:
        out.append(f"Repeats of the same stimulus (the events column `{repeats}`) gave a split-half reliability "
                   "of each column.")
    return out, refs


def connectivity_sentence(p: dict) -> tuple[str, set[str]]:
    """The connectivity matrices (``--connectivity``, ``--fisher-z``) and their reference keys ("" when none)."""
    measures = list(p.get("connectivity") or [])
    if not measures:
        return "", set()
    words = [CONNECTIVITY_PHRASES.get(m, m) for m in measures]
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    text = (f"Connectivity matrices ({listed}) of each run were computed from the cleaned region time series (kept "
            "volumes) with nilearn's `ConnectivityMeasure`, from the Ledoit-Wolf shrunk covariance (Ledoit and "
            "Wolf 2004).")
    if p.get("fisher_z") and any(m != "covariance" for m in measures):
        text += " Correlations were Fisher z-transformed (arctanh)."
    return text, {"ledoit2004", "nilearn"}


def run_paragraphs(meta: dict) -> tuple[list[str], set[str]]:
    """The methods paragraphs of one run's settings (from its ``_timeseries.json``) and their reference keys."""
    conf, refs = _confounds_sentences(meta)
    trials, trial_refs = _trials_sentence(meta)
    connectivity, connectivity_refs = connectivity_sentence(meta["Parameters"])
    paragraphs = [_columns_sentence(meta) + " " + " ".join(conf), _cleaning_sentence(meta)]
    paragraphs += [text for text in (trials, connectivity) if text]
    return paragraphs, refs | trial_refs | connectivity_refs | {"nilearn"}


def _software(versions: dict, fmriprep_version: str | None) -> str:
    others = ", ".join(f"{k} {v}" for k, v in versions.items() if k not in ("bidsapp", "nipype"))
    fmriprep = f"*fMRIPrep* {fmriprep_version}" if fmriprep_version else "*fMRIPrep*"
    return (f"Results included in this manuscript come from processing performed with *bidsapp* "
            f"{versions.get('bidsapp', '')}, which is based on *Nipype* {versions.get('nipype', '')} (Gorgolewski et "
            f"al. 2011), on the outputs of {fmriprep} (Esteban et al. 2019). Other software: {others}.")


def _run_name(meta: dict) -> str:
    """The run's entities up to space (``sub-01_task-rest_run-1``): what tells apart sections of one desc."""
    return meta.get("BIDSAppRun", "?").split("_space-")[0]


def _desc(meta: dict) -> str:
    """The desc label of a run (from ``BIDSAppRun``, its file stem)."""
    return meta.get("BIDSAppRun", "").rsplit("_desc-", 1)[-1].split("_")[0] or "?"


def methods(metas: Iterable[dict], *, fmriprep_version: str | None = None) -> tuple[str, str]:
    """``CITATION.md`` and ``CITATION.bib`` text for a set of runs.

    Runs whose settings give the same paragraphs share a section, headed by their desc label and spaces.

    Parameters
    ----------
    metas : iterable of dict
        Run sidecars (``_timeseries.json`` contents), with ``BIDSAppRun`` (the run's file stem) added.
    fmriprep_version : str, optional
        From the fMRIPrep entry of ``dataset_description.json``'s ``GeneratedBy``.

    Returns
    -------
    (str, str)
        The Markdown text and the BibTeX entries it cites.
    """
    sections: dict[tuple, list[dict]] = {}
    refs = {"fmriprep", "nipype"}
    for meta in metas:
        paragraphs, keys = run_paragraphs(meta)
        refs |= keys
        sections.setdefault((_desc(meta), *paragraphs), []).append(meta)
    if not sections:
        raise ValueError("methods: no run sidecar given")
    first = next(iter(sections.values()))[0]
    lines = ["# Methods", "",
             "*Generated by bidsapp from the settings recorded in each run's sidecar (`_timeseries.json`); the "
             "text may be copied into a methods section. Cite the references below (BibTeX: `CITATION.bib`).*",
             "", _software(first["SoftwareVersions"], fmriprep_version), ""]
    per_desc = [desc for desc, *_ in sections]
    for (desc, *paragraphs), group in sections.items():
        spaces = sorted({s.split("_")[0] for m in group for s in m.get("BIDSAppRun", "").split("space-")[1:]})
        named = f": {', '.join(_run_name(m) for m in group)}" if per_desc.count(desc) > 1 else ""
        lines += [f"## desc-{desc} ({len(group)} run{'s' * (len(group) > 1)}"
                  + (f"; space {', '.join(spaces)})" if spaces else ")") + named, ""]
        lines += [p + "\n" for p in paragraphs]
    cited = sorted(refs, key=lambda k: REFERENCES[k][0])
    lines += ["## References", ""] + [f"- {REFERENCES[k][0]}" for k in cited]
    return "\n".join(lines) + "\n", "\n\n".join(REFERENCES[k][1] for k in cited) + "\n"


def fmriprep_version(output_dir: Path) -> str | None:
    """fMRIPrep's version from the ``GeneratedBy`` of the output folder's ``dataset_description.json``."""
    import json

    try:
        desc = json.loads((Path(output_dir) / "dataset_description.json").read_text())
    except (OSError, ValueError):
        return None
    return next((g.get("Version") for g in desc.get("GeneratedBy", []) if g.get("Name") == "fMRIPrep"), None)


def excluded_regions(sidecar: Path) -> list[str]:
    """Names of the regions ``--min-coverage`` left out of a run (its ``_features.tsv`` ``excluded`` column)."""
    from bidsapp.core.tsv import read_tsv, read_tsv_header

    features = Path(str(sidecar).removesuffix("_timeseries.json") + "_features.tsv")
    if not features.is_file() or "excluded" not in read_tsv_header(features):
        return []  # a voxel run's table (250k rows) is not parsed for a column it does not have
    header, rows = read_tsv(features)
    name = header.index("name") if "name" in header else header.index(header[0])
    return [r[name] for r in rows if r[header.index("excluded")] not in ("", "n/a")]


def write_citation(output_dir: Path) -> tuple[Path, Path] | None:
    """Write ``logs/CITATION.md`` and ``logs/CITATION.bib`` for every complete run of the output folder
    (a run with its sidecar); None when there is none."""
    from bidsapp.core.files import write_text
    from bidsapp.outputs.reader import run_metas

    output_dir = Path(output_dir)
    sidecars = sorted(output_dir.glob("sub-*/**/func/*_timeseries.json"))
    metas = [dict(m, BIDSAppExcludedRegions=excluded_regions(sc)) for m, sc in zip(run_metas(sidecars), sidecars)]
    if not metas:
        return None
    text, bib = methods(metas, fmriprep_version=fmriprep_version(output_dir))
    logs = output_dir / "logs"
    logs.mkdir(exist_ok=True)
    return write_text(logs / "CITATION.md", text), write_text(logs / "CITATION.bib", bib)
