"""Trial segmentation + LSS betas: bidsapp vs nilearn's FirstLevelModel fitted per trial.

Uses the run of ``bench_masker.py`` (97 x 115 x 97 x 300, ~250,000 voxels) with 60 trials of 3 types.
Both sides start from the same cleaned array (detrend + zscore_sample); each runs in its own process.
nilearn: for each trial, ``FirstLevelModel(hrf_model="spm", drift_model="polynomial", drift_order=1,
noise_model="ols").fit(cleaned_img, events)`` with the trial as its own condition and the other trials
grouped by type, then ``compute_contrast(trial, "effect_size")``. bidsapp: ``segment_trials`` (window
-2..16 s) and LSS (one matrix product for all trials). By the Frisch-Waugh-Lovell theorem, detrending the
design (bidsapp) equals adding constant + linear drift regressors (nilearn), so the betas must agree.

Usage: python benchmarks/bench_trials.py [--nilearn-trials N]   (N < 60 extrapolates nilearn's time)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_masker import T_R, generate  # noqa: E402

N_TRIALS = 60
TYPES = ("face", "house", "scene")


def make_events(n_volumes: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(1)
    duration = n_volumes * T_R
    onsets = np.sort(rng.uniform(8, duration - 20, N_TRIALS)).round(2)
    return onsets, np.full(N_TRIALS, 1.0), [TYPES[i % 3] for i in range(N_TRIALS)]


def prepare(workdir: Path, n_volumes: int) -> Path:
    """Mask + clean once (bidsapp core) and store the cleaned array shared by both sides."""
    out = workdir / "cleaned.npy"
    if out.exists():
        return out
    import nibabel as nib

    from bidsapp.core import masking, masks, signal

    bold, mask_path, _ = generate(workdir, n_volumes)
    img = nib.load(bold)
    mask = masks.load_mask(mask_path, img.shape, img.affine)
    X = masking.apply_mask(bold, mask)
    np.save(out, signal.clean(X, t_r=T_R, detrend=True, standardize="zscore_sample", copy=False))
    return out


def worker(impl: str, workdir: Path, n_fit: int) -> None:
    Y = np.load(workdir / "cleaned.npy")
    n = Y.shape[0]
    onsets, durations, types = make_events(n)
    t0 = time.perf_counter()
    if impl == "bidsapp":
        from bidsapp.core import events as ev
        from bidsapp.core import signal

        seg = ev.segment_trials(Y, np.arange(n), n, onsets, t_r=T_R, window=(-2.0, 16.0))
        op = signal.cleaning_operator(n, t_r=T_R, detrend=True, filter=None)
        kinds = sorted(set(types))
        tindex = np.array([kinds.index(t) for t in types])
        per_trial = ev.hrf_regressors(np.arange(n) * T_R, onsets, durations, [np.array([k]) for k in range(N_TRIALS)])
        per_type = np.column_stack([per_trial[:, tindex == k].sum(1) for k in range(len(kinds))])
        W = ev.lss_weights(op.matrix @ per_trial, op.matrix @ per_type, tindex)
        betas = np.empty((N_TRIALS, Y.shape[1]), np.float32)
        for s in range(0, Y.shape[1], 32768):
            betas[:, s:s + 32768] = W @ Y[:, s:s + 32768].astype(np.float64)
        fitted = N_TRIALS
        extra = {"segments_shape": list(seg.data.shape)}
    else:
        import warnings

        import nibabel as nib
        import pandas as pd
        from nilearn.glm.first_level import FirstLevelModel

        from bidsapp.core.masking import unmask

        warnings.simplefilter("ignore")
        mask_img = nib.load(workdir / "mask.nii.gz")
        mask = np.asanyarray(mask_img.dataobj) > 0
        img = unmask(Y, mask, mask_img.affine)
        t0 = time.perf_counter()  # building the 4D image is not counted
        betas = np.full((N_TRIALS, Y.shape[1]), np.nan, np.float32)
        for i in range(n_fit):
            trial_types = [f"{t}_other" for t in types]
            trial_types[i] = "target"
            events = pd.DataFrame({"onset": onsets, "duration": durations, "trial_type": trial_types})
            model = FirstLevelModel(t_r=T_R, hrf_model="spm", drift_model="polynomial", drift_order=1,
                                    noise_model="ols", signal_scaling=False, mask_img=mask_img,
                                    minimize_memory=True)
            model.fit(img, events=events)
            beta = model.compute_contrast("target", output_type="effect_size")
            betas[i] = np.asanyarray(beta.dataobj)[mask]
        fitted = n_fit
        extra = {}
    elapsed = time.perf_counter() - t0
    np.save(workdir / f"betas_{impl}.npy", betas)
    print(json.dumps({"seconds": elapsed, "fitted": fitted, "seconds_per_trial": elapsed / fitted,
                      "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, **extra}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/bidsapp-bench"))
    p.add_argument("--volumes", type=int, default=300)
    p.add_argument("--nilearn-trials", type=int, default=N_TRIALS)
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]), int(args.worker[2]))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    prepare(args.workdir, args.volumes)
    res = {}
    for impl in ("bidsapp", "nilearn"):
        proc = subprocess.run([sys.executable, __file__, "--worker", impl, str(args.workdir), str(args.nilearn_trials)],
                              capture_output=True, text=True, check=False)
        if proc.returncode:
            sys.exit(f"{impl} failed:\n{proc.stderr}")
        res[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
    ours = np.load(args.workdir / "betas_bidsapp.npy")
    ref = np.load(args.workdir / "betas_nilearn.npy")
    k = args.nilearn_trials
    rel = float(np.abs(ours[:k] - ref[:k]).max() / np.abs(ref[:k]).max())
    nl_total = res["nilearn"]["seconds_per_trial"] * N_TRIALS
    est = "" if k == N_TRIALS else f" (extrapolated from {k} trials)"
    print(f"| step | bidsapp | nilearn FirstLevelModel per trial{est} | ratio |")
    print("|---|---|---|---|")
    print(f"| time, {N_TRIALS} trials | {res['bidsapp']['seconds']:.1f} s | {nl_total:.1f} s | "
          f"{nl_total / res['bidsapp']['seconds']:.0f}x |")
    print(f"| peak RSS | {res['bidsapp']['peak_rss_gb']:.2f} GB | {res['nilearn']['peak_rss_gb']:.2f} GB | "
          f"{res['bidsapp']['peak_rss_gb'] / res['nilearn']['peak_rss_gb']:.2f} |")
    print(f"| max relative beta difference ({k} trials) | {rel:.1e} | | |")
    print(f"segments array: {res['bidsapp']['segments_shape']}")


if __name__ == "__main__":
    main()
