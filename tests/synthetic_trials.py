"""A synthetic event-related experiment with known single-trial betas (tests and benchmarks/bench_optimized.py).

Each stimulus is shown once per run (the repeat column ``stimulus``; ``trial_type`` is its category).
Columns are voxels: a share respond, each with its own HRF (double gammas with peak 4-8 s and varied
undershoot) and its own profile of betas over stimuli (the same in every run, plus a small trial-to-trial
jitter); every voxel gets spatially correlated noise (a few shared time courses with random loadings, a
different set each run), AR(1) noise and a slow drift. The data are cleaned by detrending, as bidsapp's
cleaning node does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import gamma

from bidsapp.core import events as ev
from bidsapp.core import signal


@dataclass
class SyntheticRuns:
    """Cleaned runs with their truth.

    Attributes
    ----------
    data : list of numpy.ndarray, each (n_volumes, n_voxels), cleaned (detrended)
    operators : list of numpy.ndarray, each (n_volumes, n_volumes)
    events : list of bidsapp.core.events.Events
    true_betas : list of numpy.ndarray, each (n_trials, n_voxels)
    signal_voxels : numpy.ndarray of bool, shape (n_voxels,)
    t_r : float
    raw : list of numpy.ndarray or None
        The runs before cleaning (``keep_raw=True``).
    """

    data: list
    operators: list
    events: list
    true_betas: list
    signal_voxels: np.ndarray
    t_r: float
    raw: list | None = None


def voxel_hrfs(n_voxels: int, t_r: float, rng, oversampling: int = 50) -> np.ndarray:
    """One HRF per voxel on a ``t_r / oversampling`` grid (32 s): shape (n_voxels, n_samples), sum 1."""
    dt = t_r / oversampling
    t = np.arange(0, 32.0, dt)
    peak = rng.uniform(4.0, 8.0, n_voxels)
    under = peak + rng.uniform(8.0, 12.0, n_voxels)
    ratio = rng.uniform(0.1, 0.35, n_voxels)
    h = gamma.pdf(t[None], peak[:, None], loc=dt) - ratio[:, None] * gamma.pdf(t[None], under[:, None], loc=dt)
    return h / h.sum(axis=1, keepdims=True)


def _boxcars(n_volumes: int, t_r: float, onsets, durations, oversampling: int) -> np.ndarray:
    """High-resolution boxcar of each trial: shape (n_trials, n_volumes * oversampling)."""
    n_hr = n_volumes * oversampling
    t = np.arange(n_hr) * t_r / oversampling
    return ((t[None] >= onsets[:, None]) & (t[None] < (onsets + np.maximum(durations, t_r / oversampling))[:, None])
            ).astype(float)


def make_runs(*, n_runs: int = 4, n_volumes: int = 160, n_voxels: int = 300, n_stimuli: int = 30,
              t_r: float = 2.0, signal_share: float = 0.5, noise_rank: int = 4, noise_scale: float = 1.0,
              seed: int = 0, onsets_on_tr: bool = False, keep_raw: bool = False) -> SyntheticRuns:
    """Simulate ``n_runs`` runs of one participant (see the module docstring)."""
    rng = np.random.default_rng(seed)
    over = 10
    hrfs = voxel_hrfs(n_voxels, t_r, rng, over)
    sig = rng.random(n_voxels) < signal_share
    profile = rng.normal(0, 1, (n_stimuli, n_voxels)) + rng.uniform(0.5, 1.5, n_voxels)
    profile *= sig * rng.uniform(0.6, 1.4, n_voxels)
    categories = [f"cat{k}" for k in range(4)]
    category = [categories[s % 4] for s in range(n_stimuli)]
    run_len = n_volumes * t_r
    data, ops, events, truths, raws = [], [], [], [], []
    for _ in range(n_runs):
        order = rng.permutation(n_stimuli)
        gaps = rng.uniform(0.75, 1.25, n_stimuli)
        onsets = np.cumsum(gaps) / gaps.sum() * (run_len - 30.0) + 4.0 - gaps[0] / gaps.sum() * (run_len - 30.0)
        onsets = np.round(onsets / t_r) * t_r if onsets_on_tr else np.round(onsets, 2)
        durations = np.full(n_stimuli, 1.0)
        truth = profile[order] + 0.2 * rng.normal(0, 1, (n_stimuli, n_voxels)) * sig
        box = _boxcars(n_volumes, t_r, onsets, durations, over)  # (n_trials, n_hr)
        bold = np.zeros((n_volumes, n_voxels))
        for v in np.flatnonzero(sig):
            drive = truth[:, v] @ box
            bold[:, v] = np.convolve(drive, hrfs[v])[: box.shape[1]][::over] * over
        shared = rng.normal(0, 1, (n_volumes, noise_rank))
        shared = np.apply_along_axis(lambda c: np.convolve(c, np.ones(3) / 3, mode="same"), 0, shared)
        loadings = rng.normal(0, 1, (noise_rank, n_voxels)) * noise_scale
        ar = np.zeros((n_volumes, n_voxels))
        e = rng.normal(0, 0.6, (n_volumes, n_voxels))
        for i in range(n_volumes):
            ar[i] = (0.3 * ar[i - 1] if i else 0) + e[i]
        drift = np.linspace(-1, 1, n_volumes)[:, None] * rng.normal(0, 1, n_voxels)
        raw = bold + shared @ loadings + ar + drift + 100
        op = signal.cleaning_operator(n_volumes, t_r=t_r, detrend=True, filter=None).matrix
        data.append(op @ raw)
        if keep_raw:
            raws.append(raw)
        ops.append(op)
        stim = [f"stim{s:03d}" for s in order]
        events.append(ev.Events(path="synthetic_events.tsv", onset=onsets, duration=durations,
                                trial_type=[category[s] for s in order], extra={"stimulus": stim}))
        truths.append(truth)
    return SyntheticRuns(data=data, operators=ops, events=events, true_betas=truths, signal_voxels=sig, t_r=t_r,
                         raw=raws)


def recovery(estimates: list, truth: list, signal_voxels: np.ndarray) -> float:
    """Median over responding voxels of the correlation, across all trials, of estimated and true betas."""
    from bidsapp.core.trial_cv import column_correlation

    est = np.concatenate(estimates)[:, signal_voxels].astype(np.float64)
    true = np.concatenate(truth)[:, signal_voxels]
    ok = np.isfinite(est).all(axis=1)
    return float(np.nanmedian(column_correlation(est[ok], true[ok])))


def retest_reliability(estimates: list, events: list, signal_voxels: np.ndarray) -> float:
    """Median over responding voxels of the split-half reliability across repeats of each stimulus."""
    from bidsapp.core.trial_cv import split_half_reliability

    values = np.concatenate([np.asarray(e.extra["stimulus"]) for e in events])
    runs = np.concatenate([np.full(len(e), r) for r, e in enumerate(events)])
    betas = np.concatenate(estimates)[:, signal_voxels].astype(np.float64)
    return float(np.nanmedian(split_half_reliability(betas, values, runs)))
