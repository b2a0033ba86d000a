"""Where one participant run spends its CPU time: a per-phase breakdown of the whole process.

Each repetition is a fresh interpreter (``--child``) that runs ``bidsapp participant`` in-process with
timers wrapped around its phases: imports, argument parsing, collection (pybids indexing), the reuse check,
planning, workflow set-up, every node (the interface's own run and nipype's handling around it), the gaps
between nodes, input/output hashing (SHA-256: the BOLD's is computed inside the masking node's read, in a
helper thread; the other inputs are read again by the provenance node), installing outputs, the sidecar, the
participant page. CPU
time is user + system of the process (every thread) from ``resource.getrusage``; the whole process is
measured from outside (``os.wait4``), which adds interpreter start-up and, with ``--plugin MultiProc``, the
workers' CPU. The minimum over ``--repeat`` runs is shown (the machine may be shared), with the load average.

``--core`` also measures the core work alone in a fresh interpreter: ``apply_mask`` + ``signal.clean`` of the
same run with the same options (the ``bench_masker.py`` case 2 computation), to give the whole/core ratio.

Without ``--work-dir-kept`` the run has no ``--work-dir``, as a user's usually does: its private work folder
(in ``$TMPDIR``, set to a folder under ``--workdir``, so on the outputs' filesystem) is where the sink moves the
arrays from; with it, the run gets ``--work-dir`` and the sink copies them.

Usage: python benchmarks/bench_overhead.py [--workdir DIR] [--volumes 300] [--repeat 3] [--plugin Linear]
       [--core] [--work-dir-kept]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bytecode import compile_bidsapp  # noqa: E402

LOW, HIGH = 0.08, 0.01


def cpu() -> float:
    """CPU seconds of this process (all threads), user + system."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Recorder:
    """Inclusive CPU and wall time of wrapped calls, by label; the nodes' timeline for the gaps."""

    def __init__(self):
        self.totals: dict[str, list[float]] = {}  # label -> [cpu, wall, calls]
        self.nodes: list[tuple[str, float, float, float, float]] = []  # name, cpu0, cpu1, wall0, wall1
        self.durations: list[float] = []  # each node's runtime.duration

    def add(self, label: str, c: float, w: float) -> None:
        t = self.totals.setdefault(label, [0.0, 0.0, 0])
        t[0] += c
        t[1] += w
        t[2] += 1

    def wrap(self, owner, attr: str, label: str, node: bool = False) -> None:
        """Replace ``owner.attr`` by a timed call (a node's name is recorded when ``node``)."""
        inner = getattr(owner, attr)
        rec = self

        def timed(*args, **kwargs):
            c0, w0 = cpu(), time.perf_counter()
            try:
                result = inner(*args, **kwargs)
                if node:  # nipype's runtime.duration of the node's interface (wall s)
                    duration = getattr(getattr(result, "runtime", None), "duration", None)
                    rec.durations.extend([] if duration is None else [float(duration)])
                return result
            finally:
                c1, w1 = cpu(), time.perf_counter()
                name = label
                if node:
                    name = f"{label}: {args[0].name}"
                    rec.nodes.append((args[0].name, c0, c1, w0, w1))
                rec.add(name, c1 - c0, w1 - w0)

        setattr(owner, attr, timed)


#: steps inside the nodes and the page, timed where their callers look them up (module, attribute, label)
DETAIL = (
    ("bidsapp.core.masking", "mask_to_npy", "masking: read + gather + SHA-256 of the BOLD (mask_to_npy)"),
    ("bidsapp.interfaces.extract", "write_tsv", "masking / cleaning: write tables (features, samples)"),
    ("bidsapp.interfaces.clean", "write_tsv", "cleaning: write samples table"),
    ("bidsapp.core.signal", "cleaning_operator", "cleaning: build the operator"),
    ("bidsapp.core.signal", "apply_operator", "cleaning: apply the operator"),
    ("bidsapp.core.qc", "qc_before", "cleaning: QC before"),
    ("bidsapp.core.qc", "qc_after", "cleaning: QC after"),
    ("bidsapp.interfaces.clean", "save_npy", "cleaning: save arrays (operator)"),
    ("bidsapp.interfaces.clean", "save_npy_hashed", "cleaning: save the cleaned array + its SHA-256"),
    ("bidsapp.core.npy.RowsInPlace", "__init__", "cleaning: copy the masked array to the output file (buffered copy)"),
    ("bidsapp.core.npy.RowsInPlace", "take", "cleaning: rename the masked array to the output (private work folder)"),
    ("bidsapp.interfaces.clean", "_install_cleaned",
     "cleaning: install the cleaned file (wait for its SHA-256, hashed during the QC)"),
    ("bidsapp.core.carpet", "zscored_columns", "cleaning: carpet columns"),
    ("bidsapp.interfaces.report", "mean_volume", "report: mean image (reads the BOLD)"),
    ("bidsapp.reports.run_report", "read_tsv", "page: read tables"),
    ("bidsapp.reports.run_report", "_carpet_figure", "page: carpet figure"),
    ("bidsapp.reports.run_report", "_overlay_figure", "page: overlay figure"),
)


def _owner(dotted: str):
    """A module, or a class of a module (``package.module.Class``)."""
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError:
        module, _, name = dotted.rpartition(".")
        return getattr(importlib.import_module(module), name)


def child(argv: list[str]) -> None:
    """One instrumented run (in this process); prints the breakdown as JSON on the last line."""
    start = cpu()
    rec = Recorder()
    c0, w0 = cpu(), time.perf_counter()
    import nibabel  # noqa: F401
    import numpy  # noqa: F401
    rec.add("import numpy + nibabel", cpu() - c0, time.perf_counter() - w0)
    c0, w0 = cpu(), time.perf_counter()
    import nipype.pipeline.engine  # noqa: F401
    from nipype.interfaces.base import core as nipype_core
    from nipype.pipeline.engine import nodes as nipype_nodes
    rec.add("import nipype", cpu() - c0, time.perf_counter() - w0)
    c0, w0 = cpu(), time.perf_counter()
    import bids.layout  # noqa: F401
    rec.add("import pybids", cpu() - c0, time.perf_counter() - w0)
    c0, w0 = cpu(), time.perf_counter()
    from bidsapp.cli import run
    from bidsapp.outputs import checksums, transaction
    from bidsapp.reports import html, methods
    from bidsapp.workflows import base  # noqa: F401
    rec.add("import bidsapp (cli, workflows, interfaces)", cpu() - c0, time.perf_counter() - w0)

    rec.wrap(run, "parse_args", "parse arguments")
    rec.wrap(run, "collect_runs", "collection (pybids indexing)")
    rec.wrap(run, "runs_to_compute", "reuse check")
    rec.wrap(run, "plan_run", "plan the runs")
    rec.wrap(base, "init_bidsapp_wf", "workflow set-up")
    rec.wrap(run, "_run_workflow", "workflow run")
    rec.wrap(html, "participant_report", "participant page")
    rec.wrap(methods, "write_citation", "citation")
    rec.wrap(nipype_nodes.Node, "run", "node", node=True)
    rec.wrap(nipype_core.BaseInterface, "run", "interface (all nodes)")
    rec.wrap(checksums, "sha256sum", "  sha256 of inputs read again (provenance: all but the BOLD; reuse check)")
    rec.wrap(transaction, "sha256sum", "  sha256 of outputs (sink)")
    rec.wrap(transaction.RunWriter, "install", "  install outputs (move or copy, + sha256)")
    rec.wrap(transaction.RunWriter, "finish", "  sidecar")
    for module, attr, label in DETAIL:
        owner = _owner(module)
        if hasattr(owner, attr):
            rec.wrap(owner, attr, "  " + label)
    code = run.main(argv)
    if code != 0:
        sys.exit(f"bidsapp exited with {code}")
    nodes = sorted(rec.nodes, key=lambda n: n[3])
    gap_cpu = sum(max(0.0, b[1] - a[2]) for a, b in zip(nodes, nodes[1:]))
    gap_wall = sum(max(0.0, b[3] - a[4]) for a, b in zip(nodes, nodes[1:]))
    rec.add("gaps between nodes", gap_cpu, gap_wall)
    rec.totals["in-process total"] = [cpu() - start, 0.0, 1]
    workflow_wall = rec.totals["workflow run"][1]
    durations = rec.durations  # the nodes run in this process (Linear); MultiProc's workers leave result files
    if not durations and "--work-dir" in argv:
        durations = node_durations(Path(argv[argv.index("--work-dir") + 1]))
    rec.add("scheduling, wall: workflow run - sum of node runtimes", 0.0, workflow_wall - sum(durations))
    print(json.dumps({k: v[:2] + [v[2]] for k, v in rec.totals.items()}))


def node_durations(work: Path) -> list[float]:
    """nipype's ``runtime.duration`` (wall s) of every node that ran, from the result files of a kept work folder
    (``--work-dir-kept``: a private one is gone, and the files the sink moved out of it no longer load)."""
    from nipype.utils.filemanip import loadpkl

    out = []
    for path in work.rglob("result_*.pklz"):
        runtime = getattr(loadpkl(path), "runtime", None)
        if getattr(runtime, "duration", None) is not None:
            out.append(float(runtime.duration))
    return out


def core(bold: Path, mask: Path, confounds: Path, t_r: float) -> None:
    """The core work alone: masking + cleaning of the run, CPU seconds as JSON."""
    import nibabel as nib
    import numpy as np

    from bidsapp.core import masking, masks, signal

    c0 = cpu()
    img = nib.load(bold)
    m = masks.load_mask(str(mask), img.shape, img.affine)
    X = masking.apply_mask(str(bold), m)
    c1 = cpu()
    signal.clean(X, t_r=t_r, detrend=True, standardize="zscore_sample", confounds=np.load(confounds),
                 low_pass=LOW, high_pass=HIGH, copy=False)
    print(json.dumps({"masking": c1 - c0, "cleaning": cpu() - c1, "core": cpu() - c0}))


def spawn(cmd: list[str], env: dict | None = None) -> tuple[str, float]:
    """Run ``cmd`` (with ``env``); its stdout and wall time. Once reaped, its CPU time (with its waited-for
    children's) is in this process's ``RUSAGE_CHILDREN`` (see :func:`children_cpu`)."""
    w0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:5])} failed:\n{err[-3000:]}")
    return out, time.perf_counter() - w0


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def bidsapp_args(root: Path, out: Path, work: Path | None, plugin: str) -> list[str]:
    """The ``bench_scale.py`` single case: band-pass + the 36 confounds + zscore_sample, one process; with
    ``work``, ``--work-dir`` (kept: the sink copies the arrays), else the invocation's private work folder (in
    ``$TMPDIR``: the sink moves them)."""
    return [str(root), str(out), "participant", "--denoise", "none", "--confounds", *[f"c{k}" for k in range(36)],
            "--high-pass", str(HIGH), "--low-pass", str(LOW), "--nprocs", "1", "--plugin", plugin,
            *(["--work-dir", str(work)] if work is not None else [])]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/bidsapp-bench-overhead"))
    p.add_argument("--volumes", type=int, default=300)
    p.add_argument("--t-r", type=float, default=2.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--plugin", default="Linear", choices=["Linear", "MultiProc"])
    p.add_argument("--core", action="store_true", help="also time masking + cleaning alone")
    p.add_argument("--work-dir-kept", action="store_true",
                   help="run with --work-dir (kept for resuming: the outputs are copied); default: a user's run "
                        "without it, whose private work folder (under WORKDIR, the outputs' filesystem) is moved from")
    p.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.add_argument("--core-child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        return child(args.child)
    if args.core_child is not None:
        bold, mask, conf, t_r = args.core_child
        return core(Path(bold), Path(mask), Path(conf), float(t_r))
    compile_bidsapp()  # each child measured as installed
    import numpy as np
    from bench_masker import generate
    from bench_scale import make_dataset

    data = args.workdir / f"T{args.volumes}"
    data.mkdir(parents=True, exist_ok=True)
    bold, mask, conf = generate(data, args.volumes, args.t_r)
    root = make_dataset(data / "bids1", bold, mask, np.load(conf), args.t_r, 1)
    load0 = os.getloadavg()
    runs, whole, cores = [], [], []
    for _ in range(args.repeat):
        out, work = data / "out", data / "work"
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        tmp = data / "tmp"  # $TMPDIR of the run: its private work folder, on the outputs' filesystem
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        c0 = children_cpu()
        text, wall = spawn([sys.executable, __file__, "--child",
                            *bidsapp_args(root, out, work if args.work_dir_kept else None, args.plugin)],
                           env={**os.environ, "TMPDIR": str(tmp)})
        whole.append((children_cpu() - c0, wall))
        runs.append(json.loads(text.strip().splitlines()[-1]))
        if args.core:
            text, _ = spawn([sys.executable, __file__, "--core-child", str(bold), str(mask), str(conf),
                                str(args.t_r)])
            cores.append(json.loads(text.strip().splitlines()[-1]))
    load1 = os.getloadavg()
    print(f"load average (1 min) {load0[0]:.1f} at start, {load1[0]:.1f} at end; {args.repeat} runs, "
          f"--plugin {args.plugin}, {'--work-dir (outputs copied)' if args.work_dir_kept else 'private work folder'}; "
          "CPU s (min / max over runs), wall s of the min-CPU run")
    print()
    print("| phase | CPU s min | CPU s max | wall s | calls |")
    print("|---|---|---|---|---|")
    best = min(range(len(runs)), key=lambda k: whole[k][0])
    for label in runs[0]:
        vals = [r.get(label, [0.0, 0.0, 0])[0] for r in runs]
        wall, calls = runs[best].get(label, [0, 0, 0])[1:]
        print(f"| {label} | {min(vals):.2f} | {max(vals):.2f} | {wall:.2f} | {calls} |")
    cpus = [w[0] for w in whole]
    print(f"| whole process (from outside, with start-up and workers) | {min(cpus):.2f} | {max(cpus):.2f} | "
          f"{whole[best][1]:.2f} | 1 |")
    if cores:
        c = min(x["core"] for x in cores)
        print(f"| core work alone (apply_mask + clean) | {c:.2f} | {max(x['core'] for x in cores):.2f} | | |")
        print(f"\nwhole / core (min CPU): {min(cpus) / c:.2f}x; masking {min(x['masking'] for x in cores):.2f} s, "
              f"cleaning {min(x['cleaning'] for x in cores):.2f} s")


if __name__ == "__main__":
    main()
