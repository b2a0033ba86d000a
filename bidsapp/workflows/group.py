"""Group level: one summary row per processed run, and the intersection mask of each space (a NIfTI for
volume runs, a ``dscalar.nii`` over the grayordinates for CIFTI / GIFTI runs)."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np

from bidsapp.bids.naming import variant_of
from bidsapp.bids.participants import Participants, read_participants
from bidsapp.core import columns
from bidsapp.core.files import save_nifti
from bidsapp.core.qc import QC_COLUMNS, qc_values
from bidsapp.core.tsv import write_tsv
from bidsapp.errors import InputError
from bidsapp.outputs.dataset import check_output_owner
from bidsapp.outputs.descriptions import write_sidecar
from bidsapp.outputs.reader import (
    SIDECAR_ENDING,
    Run,
    check_configurations,
    check_unique,
    output_files,
    read_run,
    stem_of,
)
from bidsapp.settings import Settings


def group_level(s: Settings) -> int:
    """Write ``group_runs.tsv`` and ``space-<space>_desc-intersection_mask.nii.gz`` (``.dscalar.nii`` for
    grayordinate runs, per space and density)."""
    try:
        check_output_owner(s.output_dir)
    except ValueError as exc:
        raise InputError(str(exc), code=2) from None
    runs = _read_runs(_sidecars(s))
    _check_one_configuration_per_name(runs)
    participants = _participants(Path(s.bids_dir) / "participants.tsv")
    write_sidecar(write_tsv(Path(s.output_dir) / "group_runs.tsv", _summary_rows(runs)))  # + column descriptions
    masks, on_grayordinates = _masks_by_space(runs)
    for space, files in masks.items():
        if on_grayordinates[space]:
            _grayordinate_intersection(space, files, Path(s.output_dir))
        else:
            _volume_intersection(space, files, Path(s.output_dir))
    print(f"[bidsapp] group summary of {len(runs)} run(s): {Path(s.output_dir) / 'group_runs.tsv'}")
    _denoising_benchmark(s, [run.sidecar for run in runs], participants)
    return 0


def _check_one_configuration_per_name(runs: list[Run]) -> None:
    """Outputs of one name (space, atlas, desc, ...) made with two configurations (two invocations at once, two
    folders merged) are one name for two pipelines: refused (exit 2) with the loader's check, before anything is
    written, as one benchmark row over both would compare nothing."""
    by_name: dict[str, list[Run]] = {}
    for run in runs:
        by_name.setdefault(variant_of(run.stem), []).append(run)
    for same_name in by_name.values():
        try:
            check_configurations(same_name, not_done="the group level does not summarize them together")
        except ValueError as exc:
            raise InputError(str(exc), code=2) from None


def _participants(path: Path) -> Participants | None:
    """The raw dataset's ``participants.tsv`` (None when absent), checked before anything is written: ids
    without ``sub-`` or a participant on two rows are refused (exit 2)."""
    if not path.is_file():
        return None
    try:
        return read_participants(path)
    except ValueError as exc:
        raise InputError(str(exc), code=2) from None


def _sidecars(s: Settings) -> list[Path]:
    """The sidecars of the selected participants' runs; runs without one are named in one warning."""
    sidecars = output_files(Path(s.output_dir), SIDECAR_ENDING)  # the runs the loader sees
    wanted = {p.name for p in Path(s.output_dir).glob("sub-*") if p.is_dir()}
    if s.participant_label:
        wanted = {f"sub-{p.removeprefix('sub-')}" for p in s.participant_label}
        sidecars = [p for p in sidecars if p.name.split("_")[0] in wanted]
    try:
        check_unique(sidecars)  # run-1 and run-01: one run twice, as the loader refuses it
    except LookupError as exc:
        raise InputError(str(exc), code=2) from None
    incomplete = [p.name[: -len("_samples.tsv")] for p in output_files(Path(s.output_dir), "_samples.tsv")
                  if not p.with_name(p.name[: -len("_samples.tsv")] + SIDECAR_ENDING).exists()
                  and any(p.name.startswith(w + "_") for w in wanted)]
    if incomplete:
        warnings.warn(f"{len(incomplete)} run(s) have no sidecar (incomplete, e.g. interrupted) and are left out: "
                      f"{', '.join(sorted(incomplete)[:5])}{' ...' if len(incomplete) > 5 else ''}; rerun the "
                      "participant level for them.", stacklevel=3)
    if not sidecars:
        raise InputError(f"{s.output_dir}: no participant-level outputs found; run the participant level first.",
                         code=18)
    return sidecars


def _read_runs(sidecars: list[Path]) -> list[Run]:
    """The runs, read as :func:`bidsapp.load` reads them; a run whose outputs are incomplete or inconsistent is
    left out with one warning that says why (the loader's message)."""
    runs = []
    for sc in sidecars:
        try:
            runs.append(read_run(sc))
        except (OSError, ValueError) as exc:
            warnings.warn(f"{stem_of(sc)}: left out of the group level: {exc}", stacklevel=3)
    if not runs:
        raise InputError(f"{sidecars[0].parents[2]}: no run has complete participant-level outputs; rerun the "
                         "participant level.", code=18)
    return runs


def _summary_rows(runs: list[Run]) -> dict[str, list]:
    """The columns of ``group_runs.tsv``: one row per run."""
    rows: dict[str, list] = {k: [] for k in ("run", "space", "n_volumes", "volumes_kept", "n_features",
                                             "mask_voxels", "denoise",
                                             *QC_COLUMNS.values())}
    for run in runs:
        meta = run.meta
        rows["run"].append(run.stem)
        rows["space"].append(run.entities.get("space", "func"))
        rows["n_volumes"].append(run.n_volumes)
        rows["volumes_kept"].append(meta["Shape"][0])
        rows["n_features"].append(meta["Shape"][1])
        rows["mask_voxels"].append(meta["MaskVoxelCount"])
        rows["denoise"].append(meta["Parameters"].get("denoise"))
        for column, value in qc_values(meta).items():  # the run's QC metrics (n/a for older outputs)
            rows[column].append(value)
    return rows


def _masks_by_space(runs: list[Run]) -> tuple[dict[str, list[Path]], dict[str, bool]]:
    """The runs' masks by space (and density, for grayordinates), and whether each space is on grayordinates."""
    masks: dict[str, list[Path]] = {}
    on_grayordinates: dict[str, bool] = {}
    for run in runs:
        space, den = run.entities.get("space", "func"), run.entities.get("den")
        gray = columns.get(run.kind).on_grayordinates
        key = f"{space}_den-{den}" if gray and den else space
        masks.setdefault(key, []).append(run.mask_file)
        on_grayordinates[key] = gray
    return masks, on_grayordinates


def _volume_intersection(space: str, files: list[Path], out: Path) -> None:
    """``space-<space>_desc-intersection_mask.nii.gz``: the voxels in the mask of every run on the grid most runs
    share; runs on another grid are left out, with why."""
    imgs = [nib.load(f) for f in files]
    grid = [(img.shape, tuple(np.round(img.affine, 3).ravel())) for img in imgs]
    ref = max(range(len(files)), key=lambda k: (grid.count(grid[k]), -k))  # the grid most runs share
    inter = np.asanyarray(imgs[ref].dataobj) > 0
    left_out = {}
    for f, img, g in zip(files, imgs, grid):
        if g != grid[ref]:
            left_out[f.name] = f"grid {img.shape} differs from {files[ref].name}'s, the grid most runs share"
            continue
        inter &= np.asanyarray(img.dataobj) > 0
    _save_intersection(out / f"space-{space}_desc-intersection_mask.nii.gz", files, left_out,
                       functools.partial(save_nifti, nib.Nifti1Image(inter.astype(np.uint8), imgs[ref].affine)))


def _denoising_benchmark(s: Settings, sidecars: list[Path], participants: Participants | None) -> None:
    """``group_denoising*.tsv`` over the runs with region columns, and the group report's section of them."""
    from bidsapp.reports.denoising import benchmark_section, figure_data
    from bidsapp.reports.group import group_report
    from bidsapp.workflows.denoising_benchmark import ExclusionRule, write_benchmark

    rule = ExclusionRule(s.exclude_fd_mean, s.exclude_censored_fraction, s.exclude_fd_threshold)
    write_benchmark(Path(s.output_dir), sidecars, rule, participants)
    out = Path(s.output_dir)
    print(f"[bidsapp] group report: {group_report(out, benchmark_html=benchmark_section(out), edges=figure_data(out))}")


def _save_intersection(path: Path, files: list[Path], left_out: dict[str, str], save) -> None:
    """Write an intersection mask (``save(path)``) and its JSON sidecar: the runs' masks it intersects and
    those left out, with why (each also printed as one line)."""
    import json

    for name, why in left_out.items():
        print(f"[bidsapp] {name}: left out of the intersection: {why}")
    save(path)
    stem = path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.name[: -len(".dscalar.nii")]
    (path.parent / f"{stem}.json").write_text(json.dumps({
        "Description": "Voxels (grayordinates) in the mask of every run listed in Sources.",
        "Sources": [str(f.relative_to(path.parent)) for f in files if f.name not in left_out],
        "LeftOut": left_out}, indent=2) + "\n")


def _grayordinate_intersection(space: str, files: list[Path], out: Path) -> None:
    """``space-<space>[_den-<den>]_desc-intersection_mask.dscalar.nii``: the grayordinates that are columns of
    every run, matched by identity (structure and vertex, or voxel), so runs whose brain models are ordered
    differently or are subsets intersect. The reference is the first run on the meshes and grid most runs
    share; runs that do not align with it are left out, with why."""
    from bidsapp.core import cifti
    from bidsapp.core.grayordinates import align_columns

    heads = [cifti.read_header(f) for f in files]
    values = [np.asarray(h.memmap()[0], dtype=np.float64) for h in heads]

    def mesh(h) -> tuple:  # surface meshes and volume grid: what decides whether two runs align
        bm = h.brain_models
        grid = (bm.volume_shape, tuple(np.round(bm.affine, 3).ravel())) if bm.volume_mask.any() else None
        return tuple(sorted(bm.nvertices.items())), grid

    meshes = [mesh(h) for h in heads]
    ref = max(range(len(files)), key=lambda k: (meshes.count(meshes[k]), -k))  # the mesh most runs share
    inter = values[ref] > 0
    left_out = {}
    for b, f in enumerate(files):
        try:
            inter &= align_columns(values[b], heads[b].brain_models, heads[ref].brain_models, f,
                                   fix=f"not comparable with {files[ref].name}, on the mesh most runs share") > 0
        except ValueError as exc:
            left_out[f.name] = str(exc).removeprefix(f"{f}: ")
    _save_intersection(out / f"space-{space}_desc-intersection_mask.dscalar.nii", files, left_out,
                       lambda path: cifti.write_dense(path, inter[None].astype(np.float32), heads[ref],
                                                      names=["intersection"]))
