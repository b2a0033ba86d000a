"""bidsapp's whole run on an HCP-like CIFTI-2 dtseries vs nibabel + nilearn.signal.clean, side by side.

Generates (once) an fMRIPrep-like dataset with one run: a 91,282 x 1,200 float32
``space-fsLR_den-91k_bold.dtseries.nii`` (TR 0.72 s, 0.44 GB, the fsLR 91k layout of
:func:`bidsapp.demo.fslr_91k_brain_models`) with its confounds TSV. Then, each in its own process:

* nilearn: ``nib.load(...).get_fdata(dtype=float32)`` + ``load_confounds_strategy(..., "simple")`` +
  ``nilearn.signal.clean(detrend, band-pass 0.01-0.08 Hz, confounds, zscore_sample)`` + ``np.save``;
* bidsapp: the whole participant level (``bidsapp ... --space fsLR --den 91k --denoise simple
  --low-pass 0.08 --high-pass 0.01 --plugin Linear``): collection, reading (the dtseries' checksum is
  computed from the same read), the other inputs' checksums, cleaning, every output file and the sidecar.

Prints wall time, peak RSS (``VmHWM`` of the process; ``--plugin Linear`` runs every node in it)
and the max abs difference of the arrays.

Each side starts with the inputs evicted from the page cache (``--cache cold``, the default: read from disk)
or read once before it (``--cache warm``).

Usage: python benchmarks/bench_grayordinates.py [--workdir DIR] [--volumes 1200] [--cache cold|warm]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bytecode import compile_bidsapp  # noqa: E402
from page_cache import prepare  # noqa: E402

T_R = 0.72
STEM = "sub-01_task-rest_run-1"


def generate(workdir: Path, n_volumes: int) -> Path:
    """The BIDS root (with derivatives/fmriprep) of the benchmark run; reused when present."""
    import nibabel as nib
    from nibabel.cifti2 import cifti2_axes as ca

    from bidsapp.demo import _confounds, _write_tsv, fslr_91k_brain_models

    bids = workdir / f"bids-{n_volumes}"
    func = bids / "derivatives" / "fmriprep" / "sub-01" / "func"
    bold = func / f"{STEM}_space-fsLR_den-91k_bold.dtseries.nii"
    if bold.exists():
        return bids
    func.mkdir(parents=True, exist_ok=True)
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "bench", "BIDSVersion": "1.9.0"}))
    (bids / "derivatives" / "fmriprep" / "dataset_description.json").write_text(json.dumps(
        {"Name": "fMRIPrep", "BIDSVersion": "1.9.0", "DatasetType": "derivative"}))
    rng = np.random.default_rng(0)
    cols, meta = _confounds(rng, n_volumes, T_R, 0)  # no non-steady-state volume: no censoring
    _write_tsv(func / f"{STEM}_desc-confounds_timeseries.tsv", cols)
    (func / f"{STEM}_desc-confounds_timeseries.json").write_text(json.dumps(meta))
    bm = fslr_91k_brain_models()
    n = len(bm)
    drive = np.column_stack([cols["trans_x"], cols["rot_z"], cols["csf"] - cols["csf"].mean()]).astype(np.float32)
    weights = rng.normal(0, 1, (3, n)).astype(np.float32) * np.array([[20.0], [20.0], [0.2]], np.float32)
    data = np.empty((n_volumes, n), np.float32)
    for start in range(0, n_volumes, 100):
        rows = slice(start, start + 100)
        data[rows] = 1000 + drive[rows] @ weights + rng.standard_normal((data[rows].shape[0], n), np.float32) * 10
    nib.Cifti2Image(data, header=(ca.SeriesAxis(0.0, T_R, n_volumes, "second"), bm)).to_filename(bold)
    (func / f"{STEM}_space-fsLR_den-91k_bold.dtseries.json").write_text(json.dumps({"RepetitionTime": T_R}))
    return bids


def worker(impl: str, bids: str, out: str) -> None:
    bold = Path(bids) / "derivatives" / "fmriprep" / "sub-01" / "func" / f"{STEM}_space-fsLR_den-91k_bold.dtseries.nii"
    t0 = time.perf_counter()
    if impl == "nilearn":
        import warnings

        import nibabel as nib
        from nilearn.interfaces.fmriprep import load_confounds_strategy
        from nilearn.signal import clean

        warnings.simplefilter("ignore")
        X = nib.load(bold).get_fdata(dtype=np.float32)
        conf, sample_mask = load_confounds_strategy(str(bold), "simple")
        X = clean(X, confounds=conf, sample_mask=sample_mask, t_r=T_R, detrend=True, standardize="zscore_sample",
                  standardize_confounds=True, filter="butterworth", low_pass=0.08, high_pass=0.01)
        np.save(out, np.asarray(X, dtype=np.float32))
    else:
        from bidsapp.cli.run import main

        sys.argv = ["bidsapp", bids, out, "participant", "--space", "fsLR", "--den", "91k", "--denoise", "simple",
                    "--low-pass", "0.08", "--high-pass", "0.01", "--plugin", "Linear", "--nprocs", "1"]
        code = main()  # as the command calls it (its own process: e.g. the collector paused before the workflow)
        if code != 0:
            sys.exit(f"bidsapp exited with {code}")
    elapsed = time.perf_counter() - t0
    with open("/proc/self/status") as fh:  # VmHWM: ru_maxrss would also count the parent's pages at fork
        peak_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM"))
    print(json.dumps({"seconds": elapsed, "peak_rss_gb": peak_kb / 1024**2}))


def main() -> None:
    compile_bidsapp()  # measured as installed
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/bidsapp-bench-grayordinates"))
    p.add_argument("--volumes", type=int, default=1200)
    p.add_argument("--cache", choices=["cold", "warm"], default="cold",
                   help="the inputs before each side: evicted from the page cache (cold) or read once (warm)")
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    bids = generate(args.workdir, args.volumes)
    print(f"data: {bids} generated/reused in {time.perf_counter() - t0:.0f} s")
    outs = {"nilearn": args.workdir / "nilearn.npy", "bidsapp": args.workdir / "bidsapp-out"}
    res = {}
    for impl in ("bidsapp", "nilearn"):
        if impl == "bidsapp" and outs[impl].exists():
            import shutil

            shutil.rmtree(outs[impl])  # a rerun would reuse the previous outputs
        prepare([bids], args.cache)  # each side starts with the inputs in the same state (default: on disk only)
        proc = subprocess.run([sys.executable, __file__, "--worker", impl, str(bids), str(outs[impl])],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"{impl} failed:\n{proc.stderr}\n{proc.stdout}")
        res[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
    a = np.load(outs["nilearn"], mmap_mode="r")
    b = np.load(next(outs["bidsapp"].rglob("*_timeseries.npy")), mmap_mode="r")
    assert a.shape == b.shape, (a.shape, b.shape)
    diff = max(float(np.abs(a[:, s] - b[:, s]).max()) for s in np.array_split(np.arange(a.shape[1]), 16))
    n, o = res["nilearn"], res["bidsapp"]
    print(f"\nrun: {a.shape[1]} grayordinates x {a.shape[0]} volumes, float32, TR {T_R} s\n")
    print("| | nilearn (nibabel + signal.clean) | bidsapp whole run | ratio |")
    print("|---|---|---|---|")
    print(f"| time | {n['seconds']:.1f} s | {o['seconds']:.1f} s | {n['seconds'] / o['seconds']:.1f}x faster |")
    print(f"| peak RSS | {n['peak_rss_gb']:.2f} GB | {o['peak_rss_gb']:.2f} GB | "
          f"{o['peak_rss_gb'] / n['peak_rss_gb']:.2f} |")
    print(f"| max abs difference | | {diff:.1e} | |")


if __name__ == "__main__":
    main()
