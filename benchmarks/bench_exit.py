"""The end of a ``bidsapp participant`` process: ``launch.end_process`` vs Python's own exit (issue 19).

The same invocation as ``bench_scale.py --cases single`` (one 97 x 115 x 97 x 300 run, band-pass, 36 confounds,
``--nprocs 1``), as a whole process, started two ways in turns: ``python -m bidsapp.cli.run`` (ends with
:func:`bidsapp.cli.launch.end_process`: threads joined, ``atexit`` callbacks, streams flushed, then ``os._exit``)
and ``main()`` called from ``python -c`` followed by ``sys.exit`` (the interpreter's whole finalization: every
module's objects freed). The inputs are evicted before each process. Wall seconds of each process, and the median
of each way. ``--import-only`` times the finalization alone: a process that imports the run's stack and exits
either way. ``--collector`` instead times Python's cyclic garbage collections during one run in a fresh process
(``gc.callbacks``), with the collector paused before the workflow as shipped (``cli.run._collector_paused``) and
with that pause replaced by a no-op.

Usage: python benchmarks/bench_exit.py [--workdir DIR] [--repeat 4] [--import-only | --collector]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_scale import bidsapp_cmd, generate, make_dataset  # noqa: E402
from bytecode import compile_bidsapp  # noqa: E402
from page_cache import prepare  # noqa: E402

PLAIN = "import sys; sys.argv[0] = 'bidsapp'; from bidsapp.cli.run import main; sys.exit(main())"
IMPORTS = ("import numpy, nibabel, scipy.linalg, nipype.pipeline.engine, bids.layout, bidsapp.workflows.base, "
           "bidsapp.interfaces.clean, sys; from bidsapp.cli.launch import end_process; ")


def ways(root: Path, out: Path, import_only: bool) -> dict[str, list[str]]:
    """The command of each way to end the process."""
    if import_only:
        return {"end_process": [sys.executable, "-c", IMPORTS + "end_process(0)"],
                "Python's exit": [sys.executable, "-c", IMPORTS + "sys.exit(0)"]}
    cmd = bidsapp_cmd(root, out, 1)
    return {"end_process": cmd, "Python's exit": [sys.executable, "-c", PLAIN, *cmd[3:]]}


COLLECTOR = """
import contextlib, gc, sys, time
import bidsapp.cli.run as run
if sys.argv[1] == "not paused":
    run._collector_paused = contextlib.nullcontext
spent, started, counts = [0.0], [0.0], [0, 0, 0]
def timed(phase, info):
    if phase == "start":
        started[0] = time.perf_counter()
    else:
        spent[0] += time.perf_counter() - started[0]
        counts[info["generation"]] += 1
gc.callbacks.append(timed)
sys.argv = ["bidsapp", *sys.argv[2:]]
assert run.main() == 0
print(f"{spent[0]:.3f} s in {counts} collections (generations 0, 1, 2)")
"""


def collector(cmd: list[str], out: Path, repeat: int) -> None:
    """Print the time spent in collections during a run, paused as shipped and not."""
    print("| collector before the workflow | time in collections (collections per generation) |")
    print("|---|---|")
    for _ in range(repeat):
        for way in ("paused", "not paused"):
            shutil.rmtree(out, ignore_errors=True)
            proc = subprocess.run([sys.executable, "-c", COLLECTOR, way, *cmd[3:]], capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{way} failed:\n{proc.stderr[-3000:]}")
            print(f"| {way} | {proc.stdout.strip().splitlines()[-1]} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/bidsapp-bench-scale"))
    p.add_argument("--repeat", type=int, default=4)
    p.add_argument("--import-only", action="store_true")
    p.add_argument("--collector", action="store_true")
    args = p.parse_args()
    compile_bidsapp()
    data = args.workdir / "T300"
    data.mkdir(parents=True, exist_ok=True)
    bold, mask, conf = generate(data, 300, 2.0, (97, 115, 97))
    import numpy as np

    root = make_dataset(data / "bids1", bold, mask, np.load(conf), 2.0, 1)
    out = data / "out-exit"
    if args.collector:
        return collector(bidsapp_cmd(root, out, 1), out, args.repeat)
    times: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for name, cmd in ways(root, out, args.import_only).items():
            shutil.rmtree(out, ignore_errors=True)
            prepare([root, mask, conf], "cold")
            time.sleep(2)
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            times.setdefault(name, []).append(time.perf_counter() - t0)
            if proc.returncode != 0:
                sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
    print("| process ends with | wall s, each | median |")
    print("|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {', '.join(f'{v:.2f}' for v in values)} | {statistics.median(values):.2f} |")


if __name__ == "__main__":
    main()
