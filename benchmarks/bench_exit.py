"""The end of a ``bidsapp participant`` process: ``launch.end_process`` vs Python's own exit (issue 19).

The same invocation as ``bench_scale.py --cases single`` (one 97 x 115 x 97 x 300 run, band-pass, 36 confounds,
``--nprocs 1``), as a whole process, started two ways in turns: ``python -m bidsapp.cli.run`` (ends with
:func:`bidsapp.cli.launch.end_process`: threads joined, ``atexit`` callbacks, streams flushed, then ``os._exit``)
and ``main()`` called from ``python -c`` followed by ``sys.exit`` (the interpreter's whole finalization: every
module's objects freed). The inputs are evicted before each process. Wall seconds of each process, and the median
of each way. ``--import-only`` times the finalization alone: a process that imports the run's stack and exits
either way.

Usage: python benchmarks/bench_exit.py [--workdir DIR] [--repeat 4] [--import-only]
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/bidsapp-bench-scale"))
    p.add_argument("--repeat", type=int, default=4)
    p.add_argument("--import-only", action="store_true")
    args = p.parse_args()
    compile_bidsapp()
    data = args.workdir / "T300"
    data.mkdir(parents=True, exist_ok=True)
    bold, mask, conf = generate(data, 300, 2.0, (97, 115, 97))
    import numpy as np

    root = make_dataset(data / "bids1", bold, mask, np.load(conf), 2.0, 1)
    out = data / "out-exit"
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
