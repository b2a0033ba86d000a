"""Optimized trial-wise estimates: recovery step by step on synthetic data, and against GLMsingle.

``steps``: the synthetic experiment of ``tests/synthetic_trials.py`` (known betas, one HRF per voxel,
spatially correlated noise, each stimulus once per run): recovery of the true betas (median correlation
over responding voxels) and test-retest (split-half reliability across repeats) for lss, then adding
the library HRF (one shape per voxel, chosen across runs without labels), then noise regressors, then
ridge: the steps of ``--trial-estimates optimized``.

``glmsingle``: 4 runs x 200 volumes x 50,000 voxels of the same generator (onsets on the TR grid, as
GLMsingle's design matrix needs), fitted by bidsapp (cleaning + ``optimized``) and by GLMsingle (types
A-D, its defaults: library HRF, GLMdenoise, fracridge) each in its own process; time, peak RSS and the
correlation of our betas with GLMsingle's type D. GLMsingle must be installed in a separate environment,
given by ``--glmsingle-python`` (never bidsapp's own)::

    python -m venv /tmp/glmsingle-venv && /tmp/glmsingle-venv/bin/pip install <GLMsingle checkout> numpy scipy
    nice python benchmarks/bench_optimized.py glmsingle --glmsingle-python /tmp/glmsingle-venv/bin/python

Usage: python benchmarks/bench_optimized.py steps [--seeds N] [--voxels V]
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def step_estimates(s, *, repeats: bool = False) -> list[tuple[str, list]]:
    """(step name, betas per run) for lss and each added step (library HRF, noise regressors, ridge)."""
    from bidsapp.core import events as ev
    from bidsapp.core import trial_fit as tf

    rows = [("lss (SPM HRF, nuisance by trial_type)",
             [ev.lss_estimates(y, op, np.arange(y.shape[0]), e, t_r=s.t_r).betas
              for y, op, e in zip(s.data, s.operators, s.events)])]
    runs = tf.trial_runs(s.data, s.operators, s.events, t_r=s.t_r, hrf="library",
                         repeat_column="stimulus" if repeats else None)
    name = "stimulus" if repeats else None
    if not repeats:  # the library step has no repeat target: its row is the same either way
        rows.append(("+ library HRF", tf.fit_trials(runs, denoise=False, ridge=False, library=True).betas))
    rows.append(("+ noise regressors", tf.fit_trials(runs, denoise=True, ridge=False, repeat_name=name,
                                                     library=True).betas))
    rows.append(("+ ridge", tf.fit_trials(runs, denoise=True, ridge=True, repeat_name=name, library=True).betas))
    return rows


def steps(args) -> None:
    from synthetic_trials import make_runs, recovery, retest_reliability

    table: dict[str, list] = {}
    for seed in range(args.seeds):
        s = make_runs(seed=seed, n_voxels=args.voxels, n_volumes=args.volumes, n_runs=args.runs)
        for repeats in (False, True):
            for name, betas in step_estimates(s, repeats=repeats):
                if name.startswith("lss") and repeats:
                    continue
                key = name if name.startswith(("lss", "+ library")) else name + (
                    " (CV on --trial-repeats stimulus)" if repeats else " (label-free CV)")
                table.setdefault(key, []).append((recovery(betas, s.true_betas, s.signal_voxels),
                                                  retest_reliability(betas, s.events, s.signal_voxels)))
    print(f"{args.seeds} seeds, {args.runs} runs x {args.volumes} volumes x {args.voxels} voxels")
    print("| estimates | correlation with true betas | test-retest (split-half r) |")
    print("|---|---|---|")
    for key, vals in table.items():
        v = np.array(vals)
        print(f"| {key} | {v[:, 0].mean():.3f} ({v[:, 0].min():.3f}-{v[:, 0].max():.3f}) | "
              f"{v[:, 1].mean():.3f} ({v[:, 1].min():.3f}-{v[:, 1].max():.3f}) |")


# ---------------------------------------------------------------- GLMsingle comparison
def prepare(workdir: Path, n_voxels: int, n_volumes: int, n_runs: int, n_stimuli: int) -> None:
    """Raw runs, events and truth of the comparison in ``workdir`` (raw = uncleaned, as GLMsingle wants)."""
    from synthetic_trials import make_runs

    if (workdir / "truth.npz").exists():
        return
    s = make_runs(seed=0, n_voxels=n_voxels, n_volumes=n_volumes, n_runs=n_runs, n_stimuli=n_stimuli,
                  t_r=1.5, onsets_on_tr=True, keep_raw=True)
    for r in range(n_runs):
        np.save(workdir / f"raw_{r}.npy", s.raw[r].astype(np.float32))
        e = s.events[r]
        np.savez(workdir / f"events_{r}.npz", onset=e.onset, duration=e.duration,
                 stimulus=np.array(e.extra["stimulus"]), trial_type=np.array(e.trial_type))
    np.savez(workdir / "truth.npz", betas=np.concatenate(s.true_betas), signal=s.signal_voxels, t_r=s.t_r)


def _load_events(workdir: Path, r: int):
    from bidsapp.core import events as ev

    z = np.load(workdir / f"events_{r}.npz")
    return ev.Events(path=f"run{r}_events.tsv", onset=z["onset"], duration=z["duration"],
                     trial_type=z["trial_type"].tolist(), extra={"stimulus": z["stimulus"].tolist()})


def worker_bidsapp(workdir: Path, n_runs: int, repeats: bool) -> dict:
    from bidsapp.core import signal
    from bidsapp.core import trial_fit as tf

    t_r = float(np.load(workdir / "truth.npz")["t_r"])
    raw = [np.load(workdir / f"raw_{r}.npy") for r in range(n_runs)]
    events = [_load_events(workdir, r) for r in range(n_runs)]
    t0 = time.perf_counter()
    ops = [signal.cleaning_operator(x.shape[0], t_r=t_r, detrend=True, filter=None).matrix for x in raw]
    data = [op @ x.astype(np.float64) for op, x in zip(ops, raw)]
    del raw
    # what --trial-estimates optimized fits: library HRF per voxel, noise regressors, fractional ridge
    runs = tf.trial_runs(data, ops, events, t_r=t_r, hrf="library", repeat_column="stimulus" if repeats else None)
    fit = tf.fit_trials(runs, denoise=True, ridge=True, repeat_name="stimulus" if repeats else None, library=True)
    elapsed = time.perf_counter() - t0
    tag = "repeats" if repeats else "labelfree"
    np.save(workdir / f"betas_bidsapp_{tag}.npy", np.concatenate(fit.betas))
    return {"seconds": elapsed, "n_noise": fit.noise.n_components, "median_fraction": float(np.median(fit.fraction))}


def worker_glmsingle(workdir: Path, n_runs: int) -> dict:
    from glmsingle.glmsingle import GLM_single

    t_r = float(np.load(workdir / "truth.npz")["t_r"])
    raw = [np.load(workdir / f"raw_{r}.npy") for r in range(n_runs)]
    events = [np.load(workdir / f"events_{r}.npz") for r in range(n_runs)]
    stimuli = sorted({s for e in events for s in e["stimulus"].tolist()})
    design = []
    for x, e in zip(raw, events):
        d = np.zeros((x.shape[0], len(stimuli)))
        for onset, stim in zip(e["onset"], e["stimulus"]):
            d[int(round(onset / t_r)), stimuli.index(stim)] = 1
        design.append(d)
    t0 = time.perf_counter()
    glm = GLM_single({"wantmemoryoutputs": [0, 0, 0, 1], "wantfileoutputs": [0, 0, 0, 0]})
    out = glm.fit(design, [x.T.astype(np.float32) for x in raw], float(events[0]["duration"][0]), t_r,
                  outputdir=str(workdir / "glmsingle_out"), figuredir=str(workdir / "glmsingle_fig"))
    elapsed = time.perf_counter() - t0
    typed = out["typed"]
    np.save(workdir / "betas_glmsingle.npy", np.squeeze(typed["betasmd"]).T)
    return {"seconds": elapsed, "n_noise": int(typed["pcnum"]), "median_fraction": float(np.median(typed["FRACvalue"]))}


def compare(args) -> None:
    from synthetic_trials import recovery

    from bidsapp.core.trial_cv import column_correlation

    args.workdir.mkdir(parents=True, exist_ok=True)
    prepare(args.workdir, args.voxels, args.volumes, args.runs, args.stimuli)
    if args.prepare_only:
        return
    res = {}
    for impl, python in (("bidsapp-repeats", sys.executable), ("bidsapp-labelfree", sys.executable),
                         ("glmsingle", args.glmsingle_python)):
        if impl == "glmsingle" and args.skip_glmsingle:
            continue
        saved = args.workdir / f"result_{impl}.json"  # a worker run by hand (e.g. in the background) is reused
        if not saved.exists():
            proc = subprocess.run(["nice", python, __file__, "worker", impl, str(args.workdir), str(args.runs)],
                                  capture_output=True, text=True, check=False, cwd=args.workdir)
            if proc.returncode:
                sys.exit(f"{impl} failed:\n{proc.stderr[-3000:]}")
            saved.write_text(proc.stdout.strip().splitlines()[-1])
        res[impl] = json.loads(saved.read_text())
        print(impl, res[impl], flush=True)
    truth = np.load(args.workdir / "truth.npz")
    sig = truth["signal"]
    print(f"| {args.runs} runs x {args.volumes} volumes x {args.voxels} voxels | time | CPU time | peak RSS "
          "| noise regressors | median ridge fraction "
          "| recovery (r with truth) | r with GLMsingle type D (median voxel) |")
    print("|---|---|---|---|---|---|---|---|")
    ref = np.load(args.workdir / "betas_glmsingle.npy") if "glmsingle" in res else None
    for impl, r in res.items():
        b = np.load(args.workdir / f"betas_{impl.replace('-', '_')}.npy")
        rec = recovery([b], [truth["betas"]], sig)
        vs = "" if ref is None else f"{np.nanmedian(column_correlation(b[:, sig], ref[:, sig])):.3f}"
        cpu = r.get("cpu_seconds", float("nan"))
        print(f"| {impl} | {r['seconds']:.1f} s | {cpu:.1f} s | {r['peak_rss_gb']:.2f} GB | {r['n_noise']} | "
              f"{r['median_fraction']:.2f} | {rec:.3f} | {vs} |")
    if "glmsingle" in res:
        for impl in ("bidsapp-repeats", "bidsapp-labelfree"):
            cpu = res["glmsingle"].get("cpu_seconds", np.nan) / res[impl].get("cpu_seconds", np.nan)
            print(f"{impl}: {res['glmsingle']['seconds'] / res[impl]['seconds']:.0f}x faster ({cpu:.0f}x in CPU time), "
                  "peak memory "
                  f"{res[impl]['peak_rss_gb'] / res['glmsingle']['peak_rss_gb']:.2f}x GLMsingle's")


def worker(impl: str, workdir: Path, n_runs: int) -> None:
    if impl == "glmsingle":
        out = worker_glmsingle(workdir, n_runs)
    else:
        out = worker_bidsapp(workdir, n_runs, repeats=impl.endswith("repeats"))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["peak_rss_gb"] = usage.ru_maxrss / 1024**2
    out["cpu_seconds"] = usage.ru_utime + usage.ru_stime  # the whole worker, loading included: robust to load
    print(json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    st = sub.add_parser("steps")
    st.add_argument("--seeds", type=int, default=5)
    st.add_argument("--voxels", type=int, default=1000)
    st.add_argument("--volumes", type=int, default=160)
    st.add_argument("--runs", type=int, default=4)
    gl = sub.add_parser("glmsingle")
    gl.add_argument("--workdir", type=Path, default=Path("/tmp/bidsapp-bench-glmsingle"))
    gl.add_argument("--glmsingle-python", default="python")
    gl.add_argument("--voxels", type=int, default=50000)
    gl.add_argument("--volumes", type=int, default=200)
    gl.add_argument("--runs", type=int, default=4)
    gl.add_argument("--stimuli", type=int, default=50)
    gl.add_argument("--skip-glmsingle", action="store_true")
    gl.add_argument("--prepare-only", action="store_true", help="write the data and stop")
    wk = sub.add_parser("worker")
    wk.add_argument("impl")
    wk.add_argument("workdir", type=Path)
    wk.add_argument("runs", type=int)
    args = p.parse_args()
    if args.mode == "worker":
        if args.impl == "glmsingle":  # GLMsingle's environment has no bidsapp: import nothing of ours
            sys.path.pop(0)
        worker(args.impl, args.workdir, args.runs)
    elif args.mode == "steps":
        steps(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
