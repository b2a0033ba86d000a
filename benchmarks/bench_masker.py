"""bidsapp vs nilearn's NiftiMasker, side by side, each case in its own process.

Generates a run on the MNI 2 mm grid (97 x 115 x 97, 300 volumes, float32,
gzipped, ellipsoid mask of ~250,000 voxels, 36 confounds, TR 2 s), then for
three cases runs ``NiftiMasker(...).fit_transform`` and bidsapp's core in
separate processes and prints wall time, peak RSS and the max abs difference:

1. masking only
2. detrend + band-pass 0.01-0.08 Hz + 36 confounds + zscore_sample
3. as 2 with smoothing_fwhm=6

Usage: python benchmarks/bench_masker.py [--workdir DIR] [--volumes 300]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SHAPE = (97, 115, 97)
AFFINE = np.array([[2.0, 0, 0, -96], [0, 2, 0, -132], [0, 0, 2, -78], [0, 0, 0, 1]])
T_R = 2.0
CASES = {
    "1_masking": dict(detrend=False, standardize=None, confounds=False, low_pass=None, high_pass=None, fwhm=None),
    "2_clean": dict(detrend=True, standardize="zscore_sample", confounds=True, low_pass=0.08, high_pass=0.01, fwhm=None),  # noqa: E501
    "3_clean_smooth": dict(detrend=True, standardize="zscore_sample", confounds=True, low_pass=0.08, high_pass=0.01, fwhm=6.0),  # noqa: E501
}


def generate(workdir: Path, n_volumes: int, t_r: float = T_R,
             shape: tuple[int, int, int] = SHAPE) -> tuple[Path, Path, Path]:
    """The run, its mask and confounds; the ellipsoid mask fills the same fraction of any ``shape``
    (97 x 115 x 97: ~250,000 voxels; 65 x 77 x 65: ~75,000)."""
    import nibabel as nib
    from isal import igzip

    bold, mask_path, conf_path = workdir / "bold.nii.gz", workdir / "mask.nii.gz", workdir / "confounds.npy"
    if bold.exists() and mask_path.exists() and conf_path.exists():
        return bold, mask_path, conf_path
    rng = np.random.default_rng(0)
    grid = np.indices(shape, dtype=np.float32)
    c = [(s - 1) / 2 for s in shape]
    radii = (0.386 * shape[0], 0.386 * shape[1], 0.368 * shape[2])  # ~250,000 voxels on 97 x 115 x 97
    mask = sum(((g - ci) / r) ** 2 for g, ci, r in zip(grid, c, radii)) <= 1
    n_vox = int(mask.sum())
    confounds = np.cumsum(rng.normal(0, 1, (n_volumes, 36)), axis=0)
    weights = rng.normal(0, 0.5, (36, n_vox)).astype(np.float32)
    base = (1000 + 100 * rng.random(n_vox)).astype(np.float32)
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(tuple(shape) + (n_volumes,))
    hdr.set_data_dtype(np.float32)
    hdr.set_qform(AFFINE, 1)
    hdr.set_sform(AFFINE, 1)
    hdr.set_xyzt_units("mm", "sec")
    hdr["pixdim"][4] = t_r
    hdr["vox_offset"] = 352
    vol = np.zeros(shape, np.float32, order="F")
    with igzip.open(bold, "wb", compresslevel=1) as fh:
        fh.write(hdr.binaryblock + b"\x00" * 4)
        for t in range(n_volumes):
            vol[mask] = base + confounds[t].astype(np.float32) @ weights + rng.normal(0, 10, n_vox).astype(np.float32)
            fh.write(vol.tobytes(order="F"))
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), AFFINE), mask_path)
    np.save(conf_path, confounds)
    return bold, mask_path, conf_path


def worker(impl: str, case: str, bold: str, mask: str, conf: str, out: str) -> None:
    params = CASES[case]
    confounds = np.load(conf) if params["confounds"] else None
    t0 = time.perf_counter()
    if impl == "nilearn":
        import warnings

        from nilearn.maskers import NiftiMasker

        warnings.simplefilter("ignore")
        masker = NiftiMasker(mask, smoothing_fwhm=params["fwhm"], detrend=params["detrend"],
                             standardize=params["standardize"], low_pass=params["low_pass"],
                             high_pass=params["high_pass"], t_r=T_R)
        X = masker.fit_transform(bold, confounds=confounds)
    else:
        import nibabel as nib

        from bidsapp.core import masking, masks, signal

        img = nib.load(bold)
        m = masks.load_mask(mask, img.shape, img.affine)
        X = masking.apply_mask(bold, m, smoothing_fwhm=params["fwhm"])
        if params["detrend"] or params["confounds"] or params["standardize"]:
            X = signal.clean(X, t_r=T_R, detrend=params["detrend"], standardize=params["standardize"],
                             confounds=confounds, low_pass=params["low_pass"], high_pass=params["high_pass"],
                             copy=False)
    elapsed = time.perf_counter() - t0
    with open("/proc/self/status") as fh:  # VmHWM: ru_maxrss would also count the parent's pages at fork
        peak_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM"))
    np.save(out, np.ascontiguousarray(X, dtype=np.float32))
    print(json.dumps({"seconds": elapsed, "peak_rss_gb": peak_kb / 1024**2, "shape": list(X.shape)}))


def decompress_seconds(bold: Path) -> dict:
    import gzip

    from isal import igzip

    out = {}
    for name, opener in (("isal", igzip.open), ("zlib", gzip.open)):
        t0 = time.perf_counter()
        with opener(bold, "rb") as fh:
            while fh.read(1 << 24):
                pass
        out[name] = time.perf_counter() - t0
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/bidsapp-bench"))
    p.add_argument("--volumes", type=int, default=300)
    p.add_argument("--cases", nargs="+", default=list(CASES))
    p.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    bold, mask, conf = generate(args.workdir, args.volumes)
    print(f"data: {bold} ({bold.stat().st_size / 1e9:.2f} GB gz), generated/reused in {time.perf_counter() - t0:.0f} s")
    dec = decompress_seconds(bold)
    print(f"decompression only: isal {dec['isal']:.1f} s, zlib {dec['zlib']:.1f} s")
    env = dict(os.environ)
    rows = []
    for case in args.cases:
        res = {}
        for impl in ("nilearn", "bidsapp"):
            out = args.workdir / f"{case}_{impl}.npy"
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", impl, case, str(bold), str(mask), str(conf), str(out)],
                capture_output=True, text=True, env=env, check=False)
            if proc.returncode != 0:
                sys.exit(f"{impl} {case} failed:\n{proc.stderr}")
            res[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
        a = np.load(args.workdir / f"{case}_nilearn.npy", mmap_mode="r")
        b = np.load(args.workdir / f"{case}_bidsapp.npy", mmap_mode="r")
        diff = max(float(np.abs(a[:, s] - b[:, s]).max()) for s in np.array_split(np.arange(a.shape[1]), 16))
        rel = diff / max(float(np.abs(a[:, :5000]).max()), 1e-12)
        rows.append((case, res, diff, rel))
    print()
    print("| case | nilearn s | bidsapp s | speed-up | nilearn peak GB | bidsapp peak GB | RSS ratio | max abs diff | rel diff |")  # noqa: E501
    print("|---|---|---|---|---|---|---|---|---|")
    for case, res, diff, rel in rows:
        n, o = res["nilearn"], res["bidsapp"]
        print(f"| {case} | {n['seconds']:.1f} | {o['seconds']:.1f} | {n['seconds'] / o['seconds']:.1f}x | "
              f"{n['peak_rss_gb']:.2f} | {o['peak_rss_gb']:.2f} | {o['peak_rss_gb'] / n['peak_rss_gb']:.2f} | "
              f"{diff:.1e} | {rel:.1e} |")


if __name__ == "__main__":
    main()
