"""Group level: one summary row per processed run, and the intersection mask of each space (a NIfTI for
volume runs, a ``dscalar.nii`` over the grayordinates for CIFTI / GIFTI runs)."""

from __future__ import annotations

import warnings
from pathlib import Path

import nibabel as nib
import numpy as np

from bidsapp.collect import InputError
from bidsapp.columns import write_sidecar
from bidsapp.core.io import save_nifti, write_tsv
from bidsapp.derivatives import read_run_outputs
from bidsapp.settings import Settings


def group_level(s: Settings) -> int:
    """Write ``group_runs.tsv`` and ``space-<space>_desc-intersection_mask.nii.gz`` (``.dscalar.nii`` for
    grayordinate runs, per space and density)."""
    sidecars = sorted(Path(s.output_dir).glob("sub-*/**/func/*_timeseries.json"))
    wanted = {p.name for p in Path(s.output_dir).glob("sub-*") if p.is_dir()}
    if s.participant_label:
        wanted = {f"sub-{p.removeprefix('sub-')}" for p in s.participant_label}
        sidecars = [p for p in sidecars if p.name.split("_")[0] in wanted]
    incomplete = [p.name[: -len("_samples.tsv")] for p in Path(s.output_dir).glob("sub-*/**/func/*_samples.tsv")
                  if not p.with_name(p.name[: -len("_samples.tsv")] + "_timeseries.json").exists()
                  and any(p.name.startswith(w + "_") for w in wanted)]
    if incomplete:
        warnings.warn(f"{len(incomplete)} run(s) have no sidecar (incomplete, e.g. interrupted) and are left out: "
                      f"{', '.join(sorted(incomplete)[:5])}{' ...' if len(incomplete) > 5 else ''}; rerun the "
                      "participant level for them.", stacklevel=2)
    if not sidecars:
        raise InputError(f"{s.output_dir}: no participant-level outputs found; run the participant level first.",
                         code=18)
    rows: dict[str, list] = {k: [] for k in ("run", "space", "n_volumes", "volumes_kept", "n_features",
                                             "mask_voxels", "mean_framewise_displacement", "denoise")}
    masks: dict[str, list[Path]] = {}
    for sc in sidecars:
        run = read_run_outputs(sc)
        meta, stem, fd = run.meta, run.stem, run.framewise_displacement
        space = next((p[6:] for p in stem.split("_") if p.startswith("space-")), "func")
        rows["run"].append(stem)
        rows["space"].append(space)
        rows["n_volumes"].append(run.n_volumes)
        rows["volumes_kept"].append(meta["Shape"][0])
        rows["n_features"].append(meta["Shape"][1])
        rows["mask_voxels"].append(meta["MaskVoxelCount"])
        rows["mean_framewise_displacement"].append(float(np.nanmean(fd)) if np.isfinite(fd).any() else np.nan)
        rows["denoise"].append(meta["Parameters"].get("denoise"))
        mask_name = [f["Path"] for f in meta["OutputFiles"]
                     if f["Path"].endswith(("_mask.nii.gz", "_mask.dscalar.nii"))]
        if mask_name:
            den = next((p for p in stem.split("_") if p.startswith("den-")), None)
            key = space if mask_name[0].endswith(".nii.gz") else f"{space}_{den}" if den else space
            masks.setdefault(key, []).append(sc.parent / mask_name[0])
    write_sidecar(write_tsv(Path(s.output_dir) / "group_runs.tsv", rows))  # + column descriptions
    for space, files in masks.items():
        if files[0].name.endswith(".dscalar.nii"):
            _grayordinate_intersection(space, files, Path(s.output_dir))
            continue
        first = nib.load(files[0])
        inter = np.asanyarray(first.dataobj) > 0
        for f in files[1:]:
            img = nib.load(f)
            if img.shape != first.shape or not np.allclose(img.affine, first.affine, atol=1e-3):
                print(f"[bidsapp] {f.name}: grid differs from {files[0].name}; left out of the intersection")
                continue
            inter &= np.asanyarray(img.dataobj) > 0
        save_nifti(nib.Nifti1Image(inter.astype(np.uint8), first.affine),
                   Path(s.output_dir) / f"space-{space}_desc-intersection_mask.nii.gz")
    print(f"[bidsapp] group summary of {len(sidecars)} run(s): {Path(s.output_dir) / 'group_runs.tsv'}")
    return 0


def _grayordinate_intersection(space: str, files: list[Path], out: Path) -> None:
    """``space-<space>[_den-<den>]_desc-intersection_mask.dscalar.nii``: the first run's grayordinates that
    are columns of every run, matched by identity (structure and vertex, or voxel), so runs whose brain
    models are ordered differently or are subsets intersect; runs on another mesh or volume grid are left
    out with one line each."""
    from bidsapp.core import cifti
    from bidsapp.core.grayordinates import align_columns

    first = cifti.read_header(files[0])
    inter = np.asarray(first.memmap()[0]) > 0
    for f in files[1:]:
        other = cifti.read_header(f)
        values = np.asarray(other.memmap()[0], dtype=np.float64)
        try:
            inter &= align_columns(values, other.brain_models, first.brain_models, f,
                                   fix=f"not comparable with {files[0].name}") > 0
        except ValueError as exc:
            print(f"[bidsapp] {f.name}: left out of the intersection: {str(exc).removeprefix(f'{f}: ')}")
    cifti.write_dense(out / f"space-{space}_desc-intersection_mask.dscalar.nii", inter[None].astype(np.float32),
                      first, names=["intersection"])
