"""LSA and LSS equal nilearn's FirstLevelModel (same HRF, polynomial drift, confounds, OLS) over a seeded sweep.

Our side: the run is cleaned (linear detrend, confounds, censoring) and the trial design is cleaned with the same
operator (Frisch-Waugh-Lovell). nilearn's side: ``FirstLevelModel(hrf_model=..., drift_model="polynomial",
drift_order=1, noise_model="ols")`` on the raw run with the confounds in the design (and ``sample_masks``):
LSA with every trial its own condition, LSS with the target trial its own condition and the other trials grouped
by type. Tolerance: relative to each column's beta scale.
"""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bidsapp.core import hrf, signal
from bidsapp.core.trial_models import fit_trials

MODELS = ("spm", "glover", "spm+derivative", "spm+derivative+dispersion")
SHAPE = (4, 3, 2)  # 24 columns


def _design(seed: int) -> dict:
    """A seeded run: TR, length, event-related or block trials (some overlapping, some near the end)."""
    rng = np.random.default_rng(seed)
    t_r = float(rng.choice([0.8, 1.5, 2.0, 2.5]))
    n = int(rng.integers(70, 150))
    end = n * t_r
    block = seed % 3 == 1
    if block:
        dur = rng.uniform(8, 14, 6)
        onsets = np.cumsum(rng.uniform(14, 22, 6)) + 2
    else:
        dur = rng.choice([0.0, 0.5, 1.0], 14)
        onsets = np.cumsum(rng.uniform(2.0, 9.0, 14)) + 1  # gaps of 2 s: responses overlap
    onsets = onsets * (end - 14) / onsets.max()  # last trial ~14 s before the end: partial response
    types = [("a", "b", "c")[k % 3] for k in range(onsets.size)]
    if seed % 4 == 3:  # one trial in the last TR
        onsets[-1], dur[-1] = end - 0.6 * t_r, 0.0
    conf = rng.normal(size=(n, 3)) if seed % 2 else None
    keep = None
    if seed % 5 == 2:
        keep = np.ones(n, bool)
        keep[rng.choice(np.arange(5, n - 5), 4, replace=False)] = False
    return dict(t_r=t_r, n=n, onsets=np.round(onsets, 3), dur=dur, types=types, conf=conf, keep=keep, rng=rng)


def _data(d: dict, model: str) -> np.ndarray:
    """Raw run: trial responses + confound effects + a linear drift + noise, columns of varied scale."""
    rng, n = d["rng"], d["n"]
    basis = hrf.make_basis(model, d["t_r"])
    frame_times = np.arange(n) * d["t_r"]
    reg = basis.regressors(frame_times, d["onsets"], d["dur"], [np.array([k]) for k in range(d["onsets"].size)],
                           d["t_r"])[:, :, 0]
    p = int(np.prod(SHAPE))
    scale = 10 ** rng.uniform(-1, 2, p)
    X = reg @ rng.normal(1, 0.5, (reg.shape[1], p)) + rng.normal(size=(n, p)) + 5 + np.linspace(0, 3, n)[:, None]
    if d["conf"] is not None:
        X += d["conf"] @ rng.normal(size=(3, p))
    return X * scale


def _ours(d: dict, X: np.ndarray, model: str, trial_model: str):
    op = signal.cleaning_operator(d["n"], t_r=d["t_r"], confounds=d["conf"], filter=None, sample_mask=d["keep"])
    Y = signal.apply_operator(X, op, standardize=None)
    return fit_trials(trial_model, Y, op.matrix, op.kept, d["onsets"], d["dur"], d["types"], t_r=d["t_r"],
                      basis=hrf.make_basis(model, d["t_r"]))


def _censored_design(d: dict, model: str, events: pd.DataFrame) -> pd.DataFrame:
    """With censoring, the cleaning's linear detrend is over the kept volumes' positions (nilearn.signal.clean),
    not over their times (FirstLevelModel's polynomial drift): the design gets that trend as a regressor."""
    from nilearn.glm.first_level import make_first_level_design_matrix

    regs = [np.cumsum(d["keep"]) - 1.0] + ([] if d["conf"] is None else list(d["conf"].T))
    return make_first_level_design_matrix(np.arange(d["n"]) * d["t_r"], events, hrf_model=hrf.NILEARN_NAMES[model],
                                          drift_model=None, add_regs=np.column_stack(regs),
                                          add_reg_names=[f"r{j}" for j in range(len(regs))])


def _nilearn_betas(d: dict, X: np.ndarray, model: str, conditions: list[str], targets: list[str]) -> np.ndarray:
    from nilearn.glm.first_level import FirstLevelModel

    mask = nib.Nifti1Image(np.ones(SHAPE, np.uint8), np.eye(4))
    img = nib.Nifti1Image(X.T.reshape(*SHAPE, d["n"]).astype(np.float64), np.eye(4))
    events = pd.DataFrame({"onset": d["onsets"], "duration": d["dur"], "trial_type": conditions})
    conf = None if d["conf"] is None else [pd.DataFrame(d["conf"], columns=["c0", "c1", "c2"])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flm = FirstLevelModel(t_r=d["t_r"], hrf_model=hrf.NILEARN_NAMES[model], drift_model="polynomial",
                              drift_order=1, noise_model="ols", signal_scaling=False, mask_img=mask,
                              minimize_memory=True)
        if d["keep"] is None:
            flm.fit(img, events=events, confounds=conf)
        else:
            flm.fit(img, design_matrices=[_censored_design(d, model, events)],
                    sample_masks=[np.flatnonzero(d["keep"])])
        return np.stack([np.asarray(flm.compute_contrast(t, output_type="effect_size").dataobj).reshape(-1)
                         for t in targets])


def _close(ours: np.ndarray, ref: np.ndarray, scale: np.ndarray) -> float:
    return float((np.abs(ours - ref) / scale).max())


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("model", MODELS)
def test_lsa_equals_first_level_model(seed, model):
    d = _design(seed)
    X = _data(d, model)
    fit = _ours(d, X, model, "lsa")
    names = [f"t{k:02d}" for k in range(d["onsets"].size)]
    ref = _nilearn_betas(d, X, model, names, names)
    ok = fit.valid
    assert ok.sum() >= d["onsets"].size // 2, fit.reason
    scale = np.abs(ref[ok]).max(axis=0)
    err = _close(fit.betas[ok], ref[ok], scale)
    assert err <= 1e-6, f"seed {seed}, {model}: max difference {err:.1e} of the column's beta scale"


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("model", MODELS)
def test_lss_equals_first_level_model_per_trial(seed, model):
    d = _design(seed)
    X = _data(d, model)
    fit = _ours(d, X, model, "lss")
    n_trials = d["onsets"].size
    for i in (0, n_trials // 2, n_trials - 1):
        conditions = ["target" if k == i else f"other_{t}" for k, t in enumerate(d["types"])]
        ref = _nilearn_betas(d, X, model, conditions, ["target"])[0]
        if not fit.valid[i]:
            assert np.isnan(fit.betas[i]).all() or fit.response_retained[i] < 0.5
            continue
        scale = np.abs(fit.betas[fit.valid]).max(axis=0)
        err = _close(fit.betas[i], ref, scale)
        assert err <= 1e-6, f"seed {seed}, {model}, trial {i}: max difference {err:.1e} of the column's beta scale"


@pytest.mark.parametrize("seed", range(4))
def test_fir_lsa_equals_nilearn_fir(seed):
    """nilearn's FIR bin f holds the volumes acquired in (onset + (f - 1) TR, onset + f TR]; ours are centred on
    onset + offset. They coincide when each onset falls less than half a TR after a volume; nilearn's regressors
    are then 1 / oversampling (50) of ours, so its betas are 50 times ours."""
    rng = np.random.default_rng(seed)
    t_r = float(rng.choice([0.8, 2.0]))
    n = 120
    volumes = 4 + np.cumsum(rng.integers(5, 9, 12))  # gaps of 5-8 volumes: longer than the 4 bins
    onsets = np.round((volumes + rng.uniform(0.05, 0.45, volumes.size)) * t_r, 4)  # 0.05-0.45 TR after a volume
    d = dict(t_r=t_r, n=n, onsets=onsets, dur=np.zeros(onsets.size), types=["a"] * onsets.size,
             conf=rng.normal(size=(n, 3)), keep=None, rng=rng)
    X = rng.normal(size=(n, int(np.prod(SHAPE)))) * 10 ** rng.uniform(-1, 2, int(np.prod(SHAPE)))
    delays = [0, 1, 2, 3]
    op = signal.cleaning_operator(n, t_r=t_r, confounds=d["conf"], filter=None)
    Y = signal.apply_operator(X, op, standardize=None)
    basis = hrf.make_basis("fir", t_r, window=(0.0, 3 * t_r))  # bins at 0, 1, 2, 3 TR: nilearn's delays
    fit = fit_trials("lsa", Y, op.matrix, op.kept, onsets, d["dur"], d["types"], t_r=t_r, basis=basis)
    from nilearn.glm.first_level import FirstLevelModel

    names = [f"t{k:02d}" for k in range(onsets.size)]
    mask = nib.Nifti1Image(np.ones(SHAPE, np.uint8), np.eye(4))
    img = nib.Nifti1Image(X.T.reshape(*SHAPE, n), np.eye(4))
    events = pd.DataFrame({"onset": onsets, "duration": 0.0, "trial_type": names})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flm = FirstLevelModel(t_r=t_r, hrf_model="fir", fir_delays=delays, drift_model="polynomial",
                              drift_order=1, noise_model="ols", signal_scaling=False, mask_img=mask)
        flm.fit(img, events=events, confounds=[pd.DataFrame(d["conf"])])
        ref = np.stack([[np.asarray(flm.compute_contrast(f"{t}_delay_{f}", output_type="effect_size").dataobj)
                         .reshape(-1) for f in delays] for t in names])
    assert fit.valid.all()
    np.testing.assert_allclose(fit.coefficients, ref / 50, rtol=1e-6, atol=1e-9 * np.abs(ref / 50).max())
