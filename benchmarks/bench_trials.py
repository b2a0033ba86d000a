"""Trial segmentation + trial-wise betas (LSS, LSA, library HRF): bidsapp vs nilearn's FirstLevelModel.

Uses the run of ``bench_masker.py`` (97 x 115 x 97 x 300, ~250,000 voxels) with 60 trials of 3 types.
Both sides start from the same cleaned array (detrend + zscore_sample); each runs in its own process.
nilearn: for each trial, ``FirstLevelModel(hrf_model="spm", drift_model="polynomial", drift_order=1,
noise_model="ols").fit(cleaned_img, events)`` with the trial as its own condition and the other trials
grouped by type, then ``compute_contrast(trial, "effect_size")``. bidsapp: ``segment_trials`` (window
-2..16 s) and LSS (one matrix product for all trials). By the Frisch-Waugh-Lovell theorem, detrending the
design (bidsapp) equals adding constant + linear drift regressors (nilearn), so the betas must agree.

Cases (``--case``): ``lss`` (above); ``lsa`` (the estimates alone, no segments): bidsapp ``fit_trials("lsa")``
vs one ``FirstLevelModel`` with every trial its own condition and ``compute_contrast`` per trial; ``library``
(the estimates alone): bidsapp chooses one of the 20
library HRF shapes per column (label-free, 2-fold within the run) and fits LSA with each column's shape; nilearn
has no library step, so its side is the least a user would run to get there: one LSA ``FirstLevelModel`` per
library shape (custom ``hrf_model``), of which ``--nilearn-shapes K`` are fitted and the time extrapolated to
20; columns whose chosen shape was fitted are compared.

Usage: python benchmarks/bench_trials.py [--case lss lsa library] [--nilearn-trials N] [--nilearn-shapes K]
       [--small]   (N < 60 / K < 20 extrapolate nilearn's time; --small: 65 x 77 x 65 grid, ~75,000 voxels)
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


def prepare(workdir: Path, n_volumes: int, shape: tuple[int, int, int] | None = None) -> Path:
    """Mask + clean once (bidsapp core) and store the cleaned array shared by both sides."""
    out = workdir / "cleaned.npy"
    if out.exists():
        return out
    import nibabel as nib

    from bidsapp.core import masking, masks, signal

    bold, mask_path, _ = generate(workdir, n_volumes, **({"shape": shape} if shape else {}))
    img = nib.load(bold)
    mask = masks.load_mask(mask_path, img.shape, img.affine)
    X = masking.apply_mask(bold, mask)
    np.save(out, signal.clean(X, t_r=T_R, detrend=True, standardize="zscore_sample", copy=False))
    return out


def _library_kernel(shape: int):
    """A library shape as a nilearn ``hrf_model`` callable (nilearn names regressors by ``__name__``)."""
    from bidsapp.core.hrf import library_shapes

    def kernel(t_r, oversampling=50):
        return library_shapes(t_r, oversampling)[shape]

    kernel.__name__ = f"shape{shape}"
    return kernel


def _bidsapp(case: str, Y: np.ndarray, onsets, durations, types, workdir: Path) -> tuple[np.ndarray, dict]:
    from bidsapp.core import events as ev
    from bidsapp.core import signal
    from bidsapp.core.hrf_library import RunForSelection, choose_shapes
    from bidsapp.core.trial_models import fit_trials

    n = Y.shape[0]
    extra = {}
    if case == "lss":  # the historical case: segmentation + LSS; lsa / library time the estimates alone
        seg = ev.segment_trials(Y, np.arange(n), n, onsets, t_r=T_R, window=(-2.0, 16.0))
        extra["segments_shape"] = list(seg.data.shape)
    op = signal.cleaning_operator(n, t_r=T_R, detrend=True, filter=None)
    shapes = None
    if case == "library":
        choice = choose_shapes([RunForSelection(Y, op.matrix, onsets, durations, T_R)])
        shapes = choice.shapes
        np.save(workdir / "shapes.npy", shapes)
        extra["shapes_used"] = int(np.unique(shapes).size)
    fit = fit_trials("lss" if case == "lss" else "lsa", Y, op.matrix, np.arange(n), onsets, durations, types,
                     t_r=T_R, shapes=shapes, dof=op.dof)
    return fit.betas, extra


def _nilearn(case: str, Y: np.ndarray, onsets, durations, types, n_fit: int, workdir: Path) -> tuple[np.ndarray, int]:
    import warnings

    import nibabel as nib
    import pandas as pd
    from nilearn.glm.first_level import FirstLevelModel

    from bidsapp.core.masking import unmask

    warnings.simplefilter("ignore")
    mask_img = nib.load(workdir / "mask.nii.gz")
    mask = np.asanyarray(mask_img.dataobj) > 0
    img = unmask(Y, mask, mask_img.affine)
    betas = np.full((N_TRIALS, Y.shape[1]), np.nan, np.float32)

    def fit(trial_types, hrf_model):
        model = FirstLevelModel(t_r=T_R, hrf_model=hrf_model, drift_model="polynomial", drift_order=1,
                                noise_model="ols", signal_scaling=False, mask_img=mask_img, minimize_memory=True)
        return model.fit(img, events=pd.DataFrame({"onset": onsets, "duration": durations,
                                                   "trial_type": trial_types}))

    names = [f"t{i:02d}" for i in range(N_TRIALS)]
    if case == "lss":
        for i in range(n_fit):
            trial_types = [f"{t}_other" for t in types]
            trial_types[i] = "target"
            betas[i] = np.asanyarray(fit(trial_types, "spm").compute_contrast("target", output_type="effect_size")
                                     .dataobj)[mask]
        return betas, n_fit
    if case == "lsa":
        model = fit(names, "spm")
        for i in range(N_TRIALS):
            betas[i] = np.asanyarray(model.compute_contrast(names[i], output_type="effect_size").dataobj)[mask]
        return betas, 1
    shapes = np.load(workdir / "shapes.npy")
    order = [int(h) for h, _ in sorted(zip(*np.unique(shapes, return_counts=True)), key=lambda x: -x[1])]
    for h in order[:n_fit]:  # the shapes most often chosen first: the comparison covers the most columns
        model = fit(names, _library_kernel(h))
        cols = shapes == h
        for i in range(N_TRIALS):
            betas[i, cols] = np.asanyarray(model.compute_contrast(f"{names[i]}_shape{h}", output_type="effect_size")
                                           .dataobj)[mask][cols]
    return betas, min(n_fit, 20)


def worker(impl: str, case: str, workdir: Path, n_fit: int) -> None:
    Y = np.load(workdir / "cleaned.npy")
    onsets, durations, types = make_events(Y.shape[0])
    t0, c0 = time.perf_counter(), time.process_time()
    if impl == "bidsapp":
        betas, extra = _bidsapp(case, Y, onsets, durations, types, workdir)
        fitted = {"lss": N_TRIALS, "lsa": 1, "library": 20}[case]
    else:
        betas, fitted = _nilearn(case, Y, onsets, durations, types, n_fit, workdir)
        extra = {}
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    np.save(workdir / f"betas_{impl}_{case}.npy", betas)
    print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "fitted": fitted, "seconds_per_fit": elapsed / fitted,
                      "cpu_per_fit": cpu / fitted,
                      "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, **extra}))


def _report(case: str, res: dict, ours: np.ndarray, ref: np.ndarray, n_fit: int) -> None:
    total = {"lss": N_TRIALS, "lsa": 1, "library": 20}[case]
    nl_total = res["nilearn"]["seconds_per_fit"] * total
    done = np.isfinite(ref).all(axis=0) if case == "library" else slice(None)
    rows = slice(None) if case != "lss" else slice(0, n_fit)
    a, b = ours[rows][:, done], ref[rows][:, done]
    finite = np.isfinite(a).all(axis=1)  # trials bidsapp marks not estimable (NaN) are left out
    rel = float(np.abs(a[finite] - b[finite]).max() / np.abs(b[finite]).max())
    est = "" if res["nilearn"]["fitted"] >= total else f" (extrapolated from {res['nilearn']['fitted']} fits)"
    print(f"\n### {case}\n")
    print(f"| step | bidsapp | nilearn FirstLevelModel{est} | ratio |")
    print("|---|---|---|---|")
    print(f"| time, {N_TRIALS} trials | {res['bidsapp']['seconds']:.1f} s | {nl_total:.1f} s | "
          f"{nl_total / res['bidsapp']['seconds']:.0f}x |")
    nl_cpu = res["nilearn"]["cpu_per_fit"] * total
    print(f"| CPU time | {res['bidsapp']['cpu_seconds']:.1f} s | {nl_cpu:.1f} s | "
          f"{nl_cpu / res['bidsapp']['cpu_seconds']:.0f}x |")
    print(f"| peak RSS | {res['bidsapp']['peak_rss_gb']:.2f} GB | {res['nilearn']['peak_rss_gb']:.2f} GB | "
          f"{res['bidsapp']['peak_rss_gb'] / res['nilearn']['peak_rss_gb']:.2f} |")
    cover = "" if case != "library" else f" ({int(np.sum(done))} of {ours.shape[1]} columns compared)"
    print(f"| max relative beta difference{cover}, {int(finite.sum())} estimable trials | {rel:.1e} | | |")
    extra = {k: v for k, v in res["bidsapp"].items()
             if k not in ("seconds", "cpu_seconds", "fitted", "seconds_per_fit", "cpu_per_fit", "peak_rss_gb")}
    print(f"bidsapp: {extra}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--volumes", type=int, default=300)
    p.add_argument("--case", nargs="+", choices=("lss", "lsa", "library"), default=["lss", "lsa", "library"])
    p.add_argument("--nilearn-trials", type=int, default=N_TRIALS)
    p.add_argument("--nilearn-shapes", type=int, default=20)
    p.add_argument("--small", action="store_true", help="65 x 77 x 65 grid (~75,000 voxels)")
    p.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], Path(args.worker[2]), int(args.worker[3]))
        return
    workdir = args.workdir or Path("/tmp/bidsapp-bench" + ("-small" if args.small else ""))
    workdir.mkdir(parents=True, exist_ok=True)
    prepare(workdir, args.volumes, (65, 77, 65) if args.small else None)
    for case in args.case:
        res = {}
        n_fit = {"lss": args.nilearn_trials, "lsa": 1, "library": args.nilearn_shapes}[case]
        for impl in ("bidsapp", "nilearn"):
            proc = subprocess.run([sys.executable, __file__, "--worker", impl, case, str(workdir), str(n_fit)],
                                  capture_output=True, text=True, check=False)
            if proc.returncode:
                sys.exit(f"{impl} {case} failed:\n{proc.stderr}")
            res[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
        _report(case, res, np.load(workdir / f"betas_bidsapp_{case}.npy"),
                np.load(workdir / f"betas_nilearn_{case}.npy"), n_fit)


if __name__ == "__main__":
    main()
