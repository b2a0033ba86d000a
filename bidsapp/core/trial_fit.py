"""Trial-wise estimates of the runs of one participant and task, with noise regressors and ridge.

The model of each run is its trials' regressors (one per trial, cleaned like the data), optionally
with the run's data-driven noise regressors (:mod:`bidsapp.core.trial_noise`) as regressors of no interest
(projected out of data and design: Frisch-Waugh-Lovell). Betas are then either

- least squares separate with one "all other trials" regressor (LSS-1: label-free, unlike the
  LSS of :mod:`bidsapp.core.events`, whose nuisance regressors group the other trials by ``trial_type``), or
- with ``ridge``, one model per run with a regressor per trial (least squares all), shrunk by fractional
  ridge (:mod:`bidsapp.core.fracridge`), the fraction chosen per column by cross-validation: prediction of
  held-out blocks of volumes (label-free) or, with a repeat column, of each trial's betas by its repeats
  in the other runs.

Columns may use different HRFs (the library of :func:`bidsapp.core.hrf.library_shapes`): ``designs`` then hold
one design per shape and ``hrf_index`` tells each column's, chosen (``library=True``) across all the runs by
:func:`bidsapp.core.hrf_library.select_shapes` (held-out runs under an all-trials design) before the noise
regressors and ridge, as GLMsingle chooses its HRF before GLMdenoise and fracridge. Nothing here reads
``trial_type``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from bidsapp.core import fracridge as fr
from bidsapp.core import hrf_library, trial_cv, trial_noise

#: ridge fractions tried (GLMsingle's default grid: 1, 0.95, ..., 0.05)
FRACTIONS = np.linspace(1.0, 0.05, 20)
#: folds of the label-free ridge cross-validation (blocks of volumes dealt in turn)
TIME_FOLDS = 4
#: seconds per block of volumes in that cross-validation (blocks of an HRF's length, 16 s, leave trials
#: without support and over-shrink: recovery of synthetic betas 0.912 with 10 s, 0.922 with 3 s)
BLOCK_SECONDS = 3.0
#: columns processed at a time by the ridge steps
CHUNK = 4096


@dataclass
class TrialRuns:
    """The runs of one participant and task, ready for the trial model.

    Attributes
    ----------
    data : list of numpy.ndarray, each (n_r, n_columns)
        Cleaned data of each run.
    designs : list of numpy.ndarray, each (n_hrf, n_r, n_trials_r)
        Each trial's regressor, cleaned like the data, for each HRF.
    hrf_index : numpy.ndarray of int, shape (n_columns,)
        HRF of each column (all 0 with one HRF).
    t_r : float
    repeats : list of numpy.ndarray of str, or None
        Value of the repeat column for each trial of each run (``--trial-repeats``).
    """

    data: list
    designs: list
    hrf_index: np.ndarray
    t_r: float
    repeats: list | None = None

    @property
    def n_columns(self) -> int:
        return self.data[0].shape[1]

    def groups(self) -> list[tuple[int, np.ndarray]]:
        """(HRF, its columns) for each HRF used by some column."""
        return [(int(h), np.flatnonzero(self.hrf_index == h)) for h in np.unique(self.hrf_index)]


@dataclass
class TrialFit:
    """Estimates and their quality.

    Attributes
    ----------
    betas : list of numpy.ndarray, float32, each (n_trials_r, n_columns)
        NaN for trials whose regressor is empty (e.g. starting after the run's end).
    r2 : numpy.ndarray, shape (n_columns,)
        R² of the model with the estimates (trials and noise regressors) on the cleaned data, all runs.
    fraction : numpy.ndarray, shape (n_columns,)
        Ridge fraction per column (1: no ridge).
    beta_variance : list of numpy.ndarray, each (n_trials_r,)
        Median over columns of each trial's beta variance (noise variance from the residuals; with ridge, the
        variance of the unshrunk least-squares-all estimate, which shrinkage does not lower).
    reliability : numpy.ndarray or None, shape (n_columns,)
        Split-half reliability over repeat values (with a repeat column).
    noise : NoiseModel or None
    fallbacks : list of str
        One line per step that could not run as asked, saying what it fell back to.
    ridge_target : str
        The ridge step's cross-validation target ("" without ridge).
    hrf : ShapeChoice or None
        The library shape of each column and its held-out R² (``library=True``).
    """

    betas: list
    r2: np.ndarray
    fraction: np.ndarray
    beta_variance: list
    reliability: np.ndarray | None
    noise: trial_noise.NoiseModel | None
    fallbacks: list = field(default_factory=list)
    ridge_target: str = ""
    hrf: hrf_library.ShapeChoice | None = None


def _estimable(design: np.ndarray) -> np.ndarray:
    """Trials whose regressor (under every HRF) is not all zero: shape (n_trials,)."""
    return (np.abs(design).max(axis=1) > 1e-12).all(axis=0)


def lss1_weights(design: np.ndarray) -> np.ndarray:
    """LSS with one "all other trials" regressor: for each trial, the row of ``pinv([x_i, sum_others, 1])``.

    Parameters
    ----------
    design : numpy.ndarray, shape (n, n_trials)

    Returns
    -------
    numpy.ndarray, shape (n_trials, n)
    """
    n, p = design.shape
    total = design.sum(axis=1)
    ones = np.ones(n)
    w = np.empty((p, n))
    for i in range(p):
        d = np.column_stack([design[:, i], total - design[:, i], ones])
        w[i] = np.linalg.pinv(d)[0]
    return w


def _repeat_check(runs: TrialRuns, repeat_name: str | None, fallbacks: list) -> bool:
    """Whether the repeat column can be the cross-validation target (values repeating across runs)."""
    if not repeat_name or runs.repeats is None:
        return False
    if len(runs.data) < 2:
        fallbacks.append(f"--trial-repeats {repeat_name}: one run, no repeats in another run to cross-validate "
                         "on; fell back to the label-free targets")
        return False
    values = np.concatenate([np.asarray(v, dtype=object) for v in runs.repeats]).astype(str)
    run_of = np.concatenate([np.full(len(v), r) for r, v in enumerate(runs.repeats)])
    if not any(np.unique(run_of[values == v]).size >= 2 for v in np.unique(values)):
        fallbacks.append(f"--trial-repeats {repeat_name}: no value repeats across runs; fell back to the "
                         "label-free targets, and there is no split-half reliability")
        return False
    return True


def _reference_hrf(runs: TrialRuns) -> int:
    """The HRF of the noise step's shared designs: the canonical-like shape with a library, else the only one."""
    return hrf_library.CANONICAL_SHAPE if runs.designs[0].shape[0] == hrf_library.N_SHAPES else 0


def _noise_step(runs: TrialRuns, fallbacks: list, repeat_name: str | None) -> trial_noise.NoiseModel:
    """Noise model of the runs (all-trials design of the reference HRF; CV target: repeats when usable)."""
    reference = [d[_reference_hrf(runs)] for d in runs.designs]
    designs = [trial_cv.all_trials_design(x) for x in reference]
    cv_designs, target = None, "all-trials"
    if repeat_name:
        levels = trial_cv.repeat_levels([list(v) for v in runs.repeats])
        cv_designs = [trial_cv.repeat_design(x, list(v), levels) for x, v in zip(reference, runs.repeats)]
        target = f"repeats:{repeat_name}"
    model = trial_noise.fit_noise_model(designs, [np.asarray(y, dtype=np.float64) for y in runs.data],
                                        cv_designs=cv_designs, target=target, trial_designs=reference)
    if len(runs.data) < 2:
        fallbacks.append("noise regressors: one run, no held-out run to choose their number on; fell back "
                         "to none (0 noise regressors)")
    return model


def choose_library_shapes(runs: TrialRuns, fallbacks: list) -> hrf_library.ShapeChoice:
    """Each column's library shape (``ShapeChoice.shapes``: the ``hrf_index`` to fit with), chosen across the runs
    without labels.

    The all-trials regressor of a shape is the sum of its trials' cleaned regressors (cleaning is linear).
    With one run the choice is cross-validated on its two halves; that, and a choice that was not possible,
    are added to ``fallbacks``.

    Raises
    ------
    ValueError
        When ``runs.designs`` do not hold one design per library shape.
    """
    if runs.designs[0].shape[0] != hrf_library.N_SHAPES:
        raise ValueError(f"choose_library_shapes: the designs hold {runs.designs[0].shape[0]} HRF(s), not the "
                         f"{hrf_library.N_SHAPES} library shapes; build them with trial_runs(..., hrf='library').")
    regressors = [d.sum(axis=2).T for d in runs.designs]
    choice = hrf_library.select_shapes(regressors, runs.data, n_trials=sum(d.shape[2] for d in runs.designs),
                                       chunk_size=CHUNK * 8)
    if choice.note:
        fallbacks.append(choice.note.rstrip("."))
    elif choice.split == "halves":
        fallbacks.append("--hrf library: one run, no held-out run; the shapes were chosen by cross-validation "
                         "between the two halves of the run")
    return choice


@dataclass
class _Accumulator:
    """Outputs filled chunk by chunk."""

    betas: list
    variance: list
    fraction: np.ndarray
    rss: np.ndarray
    tss: np.ndarray


def fit_trials(runs: TrialRuns, *, denoise: bool, ridge: bool, repeat_name: str | None = None,
               dof: list[int] | None = None, library: bool = False) -> TrialFit:
    """Trial-wise betas of every run, with an optional library HRF per column, noise regressors and ridge.

    Parameters
    ----------
    runs : TrialRuns
        With ``library``, built with ``hrf="library"`` (its ``hrf_index`` is then replaced by the chosen shapes).
    denoise : bool
        Add the data-driven noise regressors (their number cross-validated across runs).
    ridge : bool
        One model per run, fractional ridge per column (fraction cross-validated); else LSS-1.
    repeat_name : str or None
        Name of the repeat column (``runs.repeats``): then the cross-validation target of both steps.
    dof : list of int or None
        Degrees of freedom left by cleaning in each run (default: its rows).
    library : bool
        Choose each column's HRF among the library shapes first (:func:`choose_library_shapes`).

    Returns
    -------
    TrialFit
        ``fallbacks`` lists the steps that could not run as asked (one run, no repeats).
    """
    fallbacks: list[str] = []
    choice = choose_library_shapes(runs, fallbacks) if library else None
    if choice is not None:
        runs = replace(runs, hrf_index=choice.shapes)
    usable = _repeat_check(runs, repeat_name, fallbacks)
    noise = _noise_step(runs, fallbacks, repeat_name if usable else None) if denoise else None
    n_cols = runs.n_columns
    acc = _Accumulator(betas=[np.full((d.shape[2], n_cols), np.nan, dtype=np.float32) for d in runs.designs],
                       variance=[np.zeros((d.shape[2], n_cols)) for d in runs.designs],
                       fraction=np.ones(n_cols), rss=np.zeros(n_cols), tss=np.zeros(n_cols))
    dof = dof or [y.shape[0] for y in runs.data]
    for h, cols in runs.groups():
        for start in range(0, cols.size, CHUNK):
            _fit_chunk(runs, noise, h, cols[start:start + CHUNK], ridge=ridge, usable=usable, dof=dof, acc=acc)
    reliability = None
    if usable:
        values = np.concatenate([np.asarray(v, dtype=object) for v in runs.repeats]).astype(str)
        run_of = np.concatenate([np.full(len(v), r) for r, v in enumerate(runs.repeats)])
        reliability = trial_cv.split_half_reliability(np.concatenate(acc.betas).astype(np.float64), values, run_of)
    beta_variance = [np.where(_estimable(d), np.median(v, axis=1), np.nan) for d, v in zip(runs.designs, acc.variance)]
    target = (f"repeats:{repeat_name}" if usable else "held-out blocks of volumes") if ridge else ""
    return TrialFit(betas=acc.betas, r2=1.0 - acc.rss / np.where(acc.tss > 0, acc.tss, 1.0), fraction=acc.fraction,
                    beta_variance=beta_variance, reliability=reliability, noise=noise, fallbacks=fallbacks,
                    ridge_target=target, hrf=choice)


def _fit_chunk(runs: TrialRuns, noise, h: int, c: np.ndarray, *, ridge: bool, usable: bool, dof: list,
               acc: _Accumulator) -> None:
    """Fit the columns ``c`` (all with HRF ``h``) in every run; results go to ``acc``."""
    k = noise.n_components if noise is not None else 0
    xs, ys, keep = [], [], []
    for r, y_run in enumerate(runs.data):
        comp = noise.regressors(r) if noise is not None else np.zeros((y_run.shape[0], 0))
        ok = _estimable(runs.designs[r])
        y = np.asarray(y_run[:, c], dtype=np.float64)
        acc.tss[c] += (y**2).sum(axis=0)
        xs.append(trial_noise.project_out(comp, runs.designs[r][h][:, ok]))
        ys.append(trial_noise.project_out(comp, y))
        keep.append(ok)
    if ridge:
        acc.fraction[c] = _choose_fraction(xs, ys, runs, keep, usable)
    for r in range(len(runs.data)):
        b, var_factor = _run_betas(xs[r], ys[r], acc.fraction[c] if ridge else None)
        acc.betas[r][np.ix_(keep[r], c)] = b
        acc.rss[c] += ((ys[r] - xs[r] @ b) ** 2).sum(axis=0)
        sigma2 = _noise_variance(xs[r], ys[r], dof[r] - k)
        acc.variance[r][np.ix_(keep[r], c)] = var_factor * sigma2[None, :]


def _noise_variance(x: np.ndarray, y: np.ndarray, dof: int) -> np.ndarray:
    """Residual variance per column of the least-squares-all model (n, p) -> (n_columns,)."""
    u = trial_noise.column_space(x)  # the least-squares residual is y minus its projection on x's columns
    return ((y - u @ (u.T @ y)) ** 2).sum(axis=0) / max(dof - u.shape[1], 1)


def _run_betas(x: np.ndarray, y: np.ndarray, fraction: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Betas (p, n_columns) and their variance factors (p, n_columns): LSS-1, or ridge at ``fraction``."""
    if x.shape[1] == 0:
        return np.zeros((0, y.shape[1])), np.zeros((0, y.shape[1]))
    if fraction is None:
        w = lss1_weights(x)
        return w @ y, np.repeat((w**2).sum(axis=1)[:, None], y.shape[1], axis=1)
    basis = fr.FracRidgeBasis.of(x)
    rotated = (basis.u.T @ y) / basis.s[:, None]
    levels, which = np.unique(fraction, return_inverse=True)  # each column's penalty at its own fraction
    alpha = np.take_along_axis(fr.alphas_for_fractions(basis, rotated, levels), which[None, :], axis=0)[0]
    # the unshrunk (least-squares-all) variance factor: the ridge's own would call the most shrunk trial (e.g. one
    # whose response is mostly after the run's end) the most precise
    return fr.ridge_coefs(basis, rotated, alpha[None, :])[0], fr.coef_variance_factor(basis, np.zeros_like(alpha))


def _choose_fraction(xs: list, ys: list, runs: TrialRuns, keep: list, repeats_usable: bool) -> np.ndarray:
    """Ridge fraction per column (of this chunk) with the smallest cross-validated error."""
    err = np.zeros((FRACTIONS.size, ys[0].shape[1]))
    if repeats_usable:
        coefs = [fr.fracridge(x, y, FRACTIONS)[0] if x.shape[1] else np.zeros((FRACTIONS.size, 0, y.shape[1]))
                 for x, y in zip(xs, ys)]
        values = np.concatenate([np.asarray(v, dtype=object)[k] for v, k in zip(runs.repeats, keep)]).astype(str)
        run_of = np.concatenate([np.full(int(k.sum()), r) for r, k in enumerate(keep)])
        err = trial_cv.zscored_prediction_error(np.concatenate(coefs, axis=1), values, run_of)
    else:
        block = max(1, int(round(BLOCK_SECONDS / runs.t_r)))
        for x, y in zip(xs, ys):
            fold = trial_cv.time_block_folds(x.shape[0], TIME_FOLDS, block)
            for f in range(TIME_FOLDS):
                train, test = fold != f, fold == f
                if x.shape[1] == 0 or not test.any():
                    continue
                err += fr.heldout_error(x[train], y[train], x[test], y[test], FRACTIONS)
    return FRACTIONS[np.argmin(err, axis=0)]


def spm_trial_design(operator: np.ndarray, onsets: np.ndarray, durations: np.ndarray, *, t_r: float,
                     start_time: float = 0.0) -> np.ndarray:
    """One SPM-HRF regressor per trial on the run's volume times, cleaned by ``operator``: (1, n_kept, n_trials)."""
    from bidsapp.core import events as ev

    frame_times = ev.volume_times(operator.shape[1], t_r, start_time)
    raw = ev.hrf_regressors(frame_times, onsets, durations, [np.array([k]) for k in range(onsets.size)])
    return (operator @ raw)[None]


def library_trial_design(operator: np.ndarray, onsets: np.ndarray, durations: np.ndarray, *, t_r: float,
                         start_time: float = 0.0) -> np.ndarray:
    """One regressor per trial and library shape, cleaned by ``operator``: (n_shapes, n_kept, n_trials)."""
    from bidsapp.core import events as ev
    from bidsapp.core.hrf import convolved_regressors, library_shapes

    frame_times = ev.volume_times(operator.shape[1], t_r, start_time)
    raw = convolved_regressors(frame_times, np.asarray(onsets, float), np.asarray(durations, float),
                               [np.array([k]) for k in range(len(onsets))], library_shapes(t_r),
                               orthogonalize=False)  # (n_volumes, n_trials, n_shapes)
    return np.einsum("kv,vts->skt", operator, raw)


#: the per-run design of each HRF the joined model takes
TRIAL_DESIGNS = {"spm": spm_trial_design, "library": library_trial_design}


def trial_runs(data: list, operators: list, events: list, *, t_r: float, start_times: list | None = None,
               hrf: str = "spm", repeat_column: str | None = None) -> TrialRuns:
    """:class:`TrialRuns` of cleaned runs and their events (per run, one design per HRF).

    Parameters
    ----------
    data : list of numpy.ndarray, each (n_kept_r, n_columns)
    operators : list of numpy.ndarray, each (n_kept_r, n_volumes_r)
        Cleaning operator of each run (its rows are the kept volumes).
    events : list of bidsapp.core.events.Events
        Only onsets, durations and the repeat column are read (never ``trial_type``).
    t_r : float
    start_times : list of float or None
    hrf : {"spm", "library"}
        ``library``: one design per library shape (choose them with ``fit_trials(..., library=True)``).
    repeat_column : str or None
        events.tsv column whose values mark repeats of a stimulus (``--trial-repeats``).

    Raises
    ------
    ValueError
        Naming the events file, when the repeat column is missing.
    """
    if hrf not in TRIAL_DESIGNS:
        raise ValueError(f"trial_runs: HRF {hrf!r} is not available in the joined trial model; use "
                         f"{' or '.join(TRIAL_DESIGNS)}.")
    start_times = start_times or [0.0] * len(data)
    designs = [TRIAL_DESIGNS[hrf](op, e.onset, e.duration, t_r=t_r, start_time=st)
               for op, e, st in zip(operators, events, start_times)]
    repeats = None
    if repeat_column:
        for e in events:
            if repeat_column not in e.extra:
                raise ValueError(f"{e.path}: --trial-repeats {repeat_column}: no such column; columns: "
                                 f"{sorted(e.extra)} (onset, duration and trial_type cannot be repeat columns).")
        repeats = [np.asarray(e.extra[repeat_column], dtype=object) for e in events]
    return TrialRuns(data=data, designs=designs, hrf_index=np.zeros(data[0].shape[1], dtype=int), t_r=t_r,
                     repeats=repeats)


def model_steps(trial_estimates: str | None, trial_denoise: str | None, trial_ridge: bool,
                hrf: str = "spm") -> dict | None:
    """The steps of the joined trial model asked for by the options, or None when the runs need no join.

    ``--trial-estimates optimized`` turns on the library HRF, the noise regressors and ridge; ``--trial-denoise
    pca`` and ``--trial-ridge`` turn on one step each (with ``lss`` or alone), with the SPM HRF unless
    ``--hrf library`` (then the library shapes are chosen across the runs). ``--hrf library`` with ``lss`` or
    ``lsa`` alone is no joined model (the shapes are chosen within each run).

    Returns
    -------
    dict or None
        ``{"denoise": bool, "ridge": bool, "hrf": "spm" | "library"}``.
    """
    optimized = trial_estimates == "optimized"
    denoise, ridge = optimized or trial_denoise == "pca", optimized or bool(trial_ridge)
    if not (denoise or ridge or optimized):
        return None
    return {"denoise": denoise, "ridge": ridge, "hrf": "library" if optimized or hrf == "library" else "spm"}


#: prefix of the roles, in a run's ``Sources``, of the other runs' inputs of its joined model
#: (``trial_model_<run label>_<role>``)
ROLE_PREFIX = "trial_model_"


def join_key(entities: dict) -> str:
    """Name of the joined trial model a run belongs to: one per participant, task and grid or mesh (e.g.
    ``trialmodel_sub01_taskfaces``; runs of another ``res``, ``den`` or ``cohort``, whose columns differ, are another
    model: ``trialmodel_sub01_taskfaces_res2``), letters, digits and ``_`` only (a nipype node name)."""
    key = f"trialmodel_sub{entities.get('subject', '')}_task{entities.get('task', '')}"
    key += "".join(f"_{name}{entities[name]}" for name in ("cohort", "res", "den") if entities.get(name))
    return "".join(c for c in key if c.isalnum() or c == "_")
