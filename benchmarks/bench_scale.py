"""Scale benchmarks against nilearn, in one invocation, each side as whole processes.

(a) ``runs``: 8 runs of 97 x 115 x 97 x 300 with ``bidsapp participant --nprocs 2`` vs nilearn's
    NiftiMasker over the same runs with joblib ``n_jobs=2``; wall time and summed peak RSS (every
    process's VmHWM, controller and workers).
(b) ``long``: one run each of T=1200 (TR 0.72), T=2000 (TR 0.5) and T=4000 (TR 0.5) on the 65 x 77 x 65
    grid (75k voxels; ``--long-shape 97x115x97`` for 250k), band-pass + 36 confounds: ``bidsapp
    participant`` vs NiftiMasker.fit_transform in a process. The same voxels at every T, so the
    speed-ups show how each side's cost grows with the run's length.
(c) ``single``: the 300-volume case, ``bidsapp participant`` as a whole process vs nilearn.

All cases: detrend, Butterworth band-pass 0.01-0.08 Hz, 36 confounds, zscore_sample; the arrays are
compared (max abs difference relative to each column's standard deviation).

Each side starts with the inputs evicted from the page cache (``--cache cold``, the default: read from disk,
whichever side runs first) or read once before it (``--cache warm``).

Usage: python benchmarks/bench_scale.py [--workdir DIR] [--cases runs long single] [--runs 8] [--cache cold|warm]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_masker import generate  # noqa: E402
from bytecode import compile_bidsapp  # noqa: E402
from page_cache import prepare  # noqa: E402

LOW, HIGH = 0.08, 0.01
SPACE = "MNI152NLin2009cAsym"


def write_descriptions(root: Path) -> None:
    """The raw dataset's and fMRIPrep's ``dataset_description.json`` under ``root``."""
    (root / "dataset_description.json").write_text(json.dumps({"Name": "bench", "BIDSVersion": "1.9.0"}))
    (root / "derivatives" / "fmriprep" / "dataset_description.json").write_text(json.dumps(
        {"Name": "fMRIPrep", "BIDSVersion": "1.9.0", "DatasetType": "derivative"}))


def make_dataset(root: Path, bold: Path, mask: Path, confounds: np.ndarray, t_r: float, runs: int) -> Path:
    """fMRIPrep-like derivatives with ``runs`` runs of the same data (hard links, no copies)."""
    func = root / "derivatives" / "fmriprep" / "sub-01" / "func"
    if func.exists():
        return root
    func.mkdir(parents=True)
    write_descriptions(root)
    header = "\t".join(f"c{k}" for k in range(confounds.shape[1]))
    rows = "\n".join("\t".join(repr(float(v)) for v in row) for row in confounds)
    for r in range(1, runs + 1):
        stem = f"sub-01_task-rest_run-{r}"
        os.link(bold, func / f"{stem}_space-{SPACE}_desc-preproc_bold.nii.gz")
        shutil.copy(mask, func / f"{stem}_space-{SPACE}_desc-brain_mask.nii.gz")
        (func / f"{stem}_space-{SPACE}_desc-preproc_bold.json").write_text(json.dumps({"RepetitionTime": t_r}))
        (func / f"{stem}_desc-confounds_timeseries.tsv").write_text(header + "\n" + rows + "\n")
    return root


def run_measured(cmd: list[str]) -> dict:
    """Run a command; wall time and the sum over its processes of each one's peak RSS (VmHWM)."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: dict[int, int] = {}
    top = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            for p in [top] + top.children(recursive=True):
                try:
                    with open(f"/proc/{p.pid}/status") as fh:
                        hwm = next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM"))
                    peaks[p.pid] = max(peaks.get(p.pid, 0), hwm)
                except (OSError, StopIteration):
                    pass
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.1)
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed:\n{err[-3000:]}")
    return {"seconds": time.perf_counter() - t0, "summed_peak_gb": sum(peaks.values()) / 2**20,
            "max_peak_gb": max(peaks.values(), default=0) / 2**20, "processes": len(peaks)}


NILEARN = f"""
import sys, warnings, numpy as np
from joblib import Parallel, delayed
warnings.simplefilter("ignore")
from nilearn.maskers import NiftiMasker
mask, t_r, n_jobs, out = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
pairs = [(sys.argv[i], sys.argv[i + 1]) for i in range(5, len(sys.argv), 2)]
def one(bold, conf):
    m = NiftiMasker(mask, detrend=True, standardize="zscore_sample", low_pass={LOW!r}, high_pass={HIGH!r}, t_r=t_r)
    return m.fit_transform(bold, confounds=np.load(conf)).astype(np.float32)
Xs = Parallel(n_jobs=n_jobs)(delayed(one)(b, c) for b, c in pairs)
np.save(out, Xs[0])
"""


def bidsapp_cmd(root: Path, out: Path, nprocs: int) -> list[str]:
    """The whole app, as a user runs it: the same filter and the 36 columns as explicit confounds."""
    return [sys.executable, "-m", "bidsapp.cli.run", str(root), str(out), "participant", "--denoise", "none",
            "--confounds", *[f"c{k}" for k in range(36)], "--high-pass", str(HIGH), "--low-pass", str(LOW),
            "--nprocs", str(nprocs)]


def compare(out: Path, nilearn_npy: Path) -> float:
    """Max abs difference of run 1, relative to each column's standard deviation."""
    (ours,) = out.rglob("*run-1_*_timeseries.npy")
    a, b = np.load(nilearn_npy, mmap_mode="r"), np.load(ours, mmap_mode="r")
    worst = 0.0
    for cols in np.array_split(np.arange(a.shape[1]), 32):
        x, y = np.asarray(a[:, cols], np.float64), np.asarray(b[:, cols], np.float64)
        worst = max(worst, float((np.abs(x - y).max(axis=0) / np.maximum(x.std(axis=0), 1e-12)).max()))
    return worst


def case(name: str, workdir: Path, n_volumes: int, t_r: float, runs: int, nprocs: int,
         shape: tuple[int, int, int] = (97, 115, 97), cache: str = "cold") -> dict:
    data = workdir / (f"T{n_volumes}" if shape == (97, 115, 97) else f"T{n_volumes}-{'x'.join(map(str, shape))}")
    data.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    bold, mask, conf = generate(data, n_volumes, t_r, shape)
    root = make_dataset(data / f"bids{runs}", bold, mask, np.load(conf), t_r, runs)
    print(f"[{name}] data ready in {time.perf_counter() - t0:.0f} s", flush=True)
    out = data / f"out-{name}"
    shutil.rmtree(out, ignore_errors=True)
    inputs = [root, mask, conf]
    prepare(inputs, cache)  # each side starts with the inputs in the same state (default: on disk only)
    ours = run_measured(bidsapp_cmd(root, out, nprocs))
    print(f"[{name}] bidsapp {ours}", flush=True)
    nl_out = data / f"nilearn-{name}.npy"
    pairs = []
    for bold_file in sorted((root / "derivatives" / "fmriprep").rglob("*_desc-preproc_bold.nii.gz")):
        pairs += [str(bold_file), str(conf)]
    prepare(inputs, cache)
    theirs = run_measured([sys.executable, "-c", NILEARN, str(mask), str(t_r), str(nprocs), str(nl_out), *pairs])
    print(f"[{name}] nilearn {theirs}", flush=True)
    return {"case": name, "T": n_volumes, "runs": runs, "bidsapp": ours, "nilearn": theirs,
            "diff": compare(out, nl_out)}


def main() -> None:
    compile_bidsapp()  # measured as installed
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/bidsapp-bench-scale"))
    p.add_argument("--cases", nargs="+", default=["single", "runs", "long"])
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--long-volumes", type=int, nargs="+", default=[1200, 2000, 4000])
    p.add_argument("--long-shape", default="65x77x65", help="grid of the long runs (97x115x97: 250k voxels)")
    p.add_argument("--cache", choices=["cold", "warm"], default="cold",
                   help="the inputs before each side: evicted from the page cache (cold) or read once (warm)")
    args = p.parse_args()
    rows = []
    if "single" in args.cases:
        rows.append(case("single", args.workdir, 300, 2.0, 1, 1, cache=args.cache))
    if "runs" in args.cases:
        rows.append(case("runs", args.workdir, 300, 2.0, args.runs, 2, cache=args.cache))
    if "long" in args.cases:
        shape = tuple(int(v) for v in args.long_shape.split("x"))
        for t in args.long_volumes:
            rows.append(case(f"long{t}", args.workdir, t, 0.72 if t <= 1200 else 0.5, 1, 1, shape, cache=args.cache))
    print()
    print("| case | runs x T | nilearn s | bidsapp s | speed-up | nilearn summed peak GB | "
          "bidsapp summed peak GB | RSS ratio | max diff / column std |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        n, o = r["nilearn"], r["bidsapp"]
        print(f"| {r['case']} | {r['runs']} x {r['T']} | {n['seconds']:.1f} | {o['seconds']:.1f} | "
              f"{n['seconds'] / o['seconds']:.1f}x | {n['summed_peak_gb']:.2f} | {o['summed_peak_gb']:.2f} | "
              f"{o['summed_peak_gb'] / n['summed_peak_gb']:.2f} | {r['diff']:.1e} |")


if __name__ == "__main__":
    main()
