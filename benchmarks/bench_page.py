"""The participant page's cost: ``participant_report`` on a finished run, each repetition a fresh interpreter.

Generates (once) a run of ``--shape`` (42 x 50 x 42: ~20,000 voxels) for each of ``--volumes`` with
fMRIPrep-like confounds in which 2 % of the volumes have a framewise displacement of 0.9 mm, runs ``bidsapp
participant --denoise scrubbing --low-pass 0.08 --high-pass 0.01`` on it (so ~10 % of the volumes are
censored and the carpet has red bands), then builds the page again ``--repeat`` times, each in a new process
(matplotlib imported as in a real run, which imports it only for the page), and prints the
minimum CPU time of the page and of each figure function.

``--out DIR`` measures the page of an existing output folder (e.g. a 300-volume run of ``bench_scale.py``)
instead of generating runs.

``--src DIR`` puts DIR first on the children's ``PYTHONPATH``: DIR holding another version's ``bidsapp``
package (``git archive <commit> bidsapp | tar -x -C DIR``) measures that version on the same outputs.
``--against DIR`` measures that version too, the two taking turns (on a loaded machine, separate invocations
drift), and prints the ratios.

Usage: python benchmarks/bench_page.py [--workdir DIR] [--volumes 1200 4000] [--repeat 5] [--src DIR] [--against DIR]
       [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_masker import generate  # noqa: E402
from bench_scale import write_descriptions  # noqa: E402

SPACE = "MNI152NLin2009cAsym"
STEM = "sub-01_task-rest_run-1"
FIGURES = ("overlay_planes", "coverage_bars", "carpet_plot", "trial_timeline", "connectivity_matrix")


def make_dataset(workdir: Path, n_volumes: int, t_r: float, shape: tuple[int, int, int]) -> Path:
    """fMRIPrep-like derivatives of one run (reused when present)."""
    from bidsapp.demo import _confounds, _write_tsv

    bold, mask, _ = generate(workdir, n_volumes, t_r, shape)
    root = workdir / "bids"
    func = root / "derivatives" / "fmriprep" / "sub-01" / "func"
    if func.exists():
        return root
    func.mkdir(parents=True)
    write_descriptions(root)
    rng = np.random.default_rng(1)
    cols, meta = _confounds(rng, n_volumes, t_r, 0)
    cols["framewise_displacement"][rng.choice(np.arange(5, n_volumes - 5), n_volumes // 50, replace=False)] = 0.9
    os.link(bold, func / f"{STEM}_space-{SPACE}_desc-preproc_bold.nii.gz")
    os.link(mask, func / f"{STEM}_space-{SPACE}_desc-brain_mask.nii.gz")
    (func / f"{STEM}_space-{SPACE}_desc-preproc_bold.json").write_text(json.dumps({"RepetitionTime": t_r}))
    _write_tsv(func / f"{STEM}_desc-confounds_timeseries.tsv", cols)
    (func / f"{STEM}_desc-confounds_timeseries.json").write_text(json.dumps(meta))
    return root


def child(out: str) -> None:
    """Build the page once; print (JSON) the CPU and wall time of the whole (bidsapp's imports included), of the
    ``participant_report`` call alone (``page``: what the page adds to a run, which has imported nibabel and
    bidsapp already, but not matplotlib or pandas) and of each figure function."""
    w0, c0 = time.perf_counter(), time.process_time()
    from bidsapp.reports import figures
    from bidsapp.reports.html import participant_report

    spent: dict[str, float] = {}

    def timed(name, fn):
        def call(*args, **kwargs):
            c = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.process_time() - c
        return call

    for name in FIGURES:
        setattr(figures, name, timed(name, getattr(figures, name)))
    c1 = time.process_time()
    participant_report(Path(out), "01")
    print(json.dumps({"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0,
                      "page": time.process_time() - c1, **spent, "load": os.getloadavg()[0]}))


def measure(out: Path, repeat: int, sources: list[str | None]) -> list[dict]:
    """The minimum of ``repeat`` fresh processes for each source (None: this version), the sources taking turns
    (so that a change of the machine's load falls on all of them alike)."""
    runs: list[list[dict]] = [[] for _ in sources]
    for _ in range(repeat):
        for i, src in enumerate(sources):
            env = dict(os.environ)
            if src:
                env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
            done = subprocess.run([sys.executable, __file__, "--child", str(out)], env=env, check=True,
                                  capture_output=True, text=True)
            runs[i].append(json.loads(done.stdout.splitlines()[-1]))
    bests = []
    for rows in runs:
        best = {k: min(r.get(k, 0.0) for r in rows) for k in rows[0] if k != "load"}
        best["load"] = f"{min(r['load'] for r in rows):.1f}-{max(r['load'] for r in rows):.1f}"
        bests.append(best)
    return bests


def report(name: str, out: Path, args) -> None:
    """Print the page's times of ``out`` (and of the ``--against`` version, with the ratios)."""
    sources = [args.src] + ([args.against] if args.against else [])
    bests = measure(out, args.repeat, sources)
    for label, best in zip(["", " --against"], bests):
        print(f"{name}{label}: " + ", ".join(f"{k} {v:.2f} s" if isinstance(v, float) else f"{k} {v}"
                                             for k, v in best.items()), flush=True)
    if args.against:
        print(f"{name} --against / this: " + ", ".join(f"{k} {bests[1][k] / bests[0][k]:.2f}x" for k in bests[0]
                                                        if k in bests[1] and isinstance(bests[0][k], float)
                                                        and bests[0][k] > 0), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bidsapp-bench-page")
    p.add_argument("--volumes", type=int, nargs="+", default=[1200, 4000])
    p.add_argument("--shape", default="42x50x42", help="grid of the runs (42x50x42: ~20,000 voxels)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--src", help="a folder holding another version's bidsapp package, measured instead")
    p.add_argument("--against", help="a folder holding another version's bidsapp package, measured in turns with "
                                     "this one (or --src)")
    p.add_argument("--out", type=Path, help="an existing output folder (with sub-01) to measure instead")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child)
        return
    if args.out:
        report(args.out.name, args.out, args)
        return
    shape = tuple(int(v) for v in args.shape.split("x"))
    for n in args.volumes:
        t_r = 0.72 if n <= 1200 else 0.5
        data = args.workdir / f"T{n}-{args.shape}"
        data.mkdir(parents=True, exist_ok=True)
        root, out = make_dataset(data, n, t_r, shape), data / "out"
        if not (out / "sub-01.html").exists():
            subprocess.run([sys.executable, "-m", "bidsapp.cli.run", str(root), str(out), "participant",
                            "--denoise", "scrubbing", "--low-pass", "0.08", "--high-pass", "0.01"], check=True)
        report(f"T={n} {args.shape}", out, args)


if __name__ == "__main__":
    main()
