"""A small resting-state dataset where head motion leaks into the signal in two known ways.

Each participant has one run (``task-rest``) on a 4 mm grid, an atlas of 20 regions (compact parcels of an
ellipsoid brain), fMRIPrep-like confounds (motion parameters and their expansions, FD computed from them as
Power et al. 2012, std DVARS, WM / CSF, cosines) and ``age`` / ``sex`` in ``participants.tsv``. The region
signals are three networks of shared signal plus noise, and two motion artefacts whose size grows with the
participant's motion:

- a **linear** artefact: a spatially smooth (so distance-dependent) mix of the six motion parameters, which
  regressing the motion parameters removes (``simple``) but detrending alone does not (``none``);
- **spikes**: at each head jerk (one volume out and back: FD > 0.5 mm at it and the next volume, std DVARS
  > 1.5 for four volumes), a global signal jump decaying over four volumes, which is not a linear function of
  the motion parameters, so only censoring those volumes (``scrubbing``) removes it.

Measured with the real CLI (tests/test_group_denoising_benchmark.py) for seeds 7 (the test's), 1, 2 and 3:
median |QC-FC| none 0.78-0.92 > simple 0.62-0.73 > scrubbing 0.22-0.32; edges p < 0.05: none 82-99% >
simple 37-68% > scrubbing 4-9% (chance: 5%).

So the ordering of the strategies on QC-FC is known: ``none`` worst, then ``simple``, then ``scrubbing``.
One more participant moves a lot without spikes (mean FD > 0.25 mm): the benchmark's exclusion rule drops it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from bidsapp.demo import _write_tsv, add_expansions

SPACE = "MNI152NLin2009cAsym"
SHAPE = (14, 16, 14)
AFFINE = np.array([[4.0, 0, 0, -26.0], [0, 4, 0, -30], [0, 0, 4, -26], [0, 0, 0, 1]])
N_REGIONS = 20
T_R = 2.0


@dataclass
class MotionDataset:
    """Where the generator wrote the dataset, and what it put in it."""

    bids: Path
    atlas: Path
    atlas_labels: Path
    mean_fd: dict[str, float]
    excluded: str  # the participant the default exclusion rule drops


def _brain() -> np.ndarray:
    grid = np.indices(SHAPE).astype(float)
    c = [(s - 1) / 2 for s in SHAPE]
    return sum(((g - ci) / (0.42 * s)) ** 2 for g, ci, s in zip(grid, c, SHAPE)) <= 1.0


def _parcels(brain: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Labels 1..N_REGIONS: each brain voxel goes to its nearest of N_REGIONS farthest-point seeds."""
    ijk = np.argwhere(brain).astype(float)
    seeds = [ijk[rng.integers(len(ijk))]]
    for _ in range(N_REGIONS - 1):
        d = np.min([np.linalg.norm(ijk - s, axis=1) for s in seeds], axis=0)
        seeds.append(ijk[np.argmax(d)])
    nearest = np.argmin([np.linalg.norm(ijk - s, axis=1) for s in seeds], axis=0)
    labels = np.zeros(SHAPE, np.int16)
    labels[brain] = nearest + 1
    return labels


def _motion(rng: np.random.Generator, n: int, level: float, n_spikes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Six motion parameters (mm, rad), FD (Power: rotations on a 50 mm sphere) and the spike volumes.

    The parameters are a stationary AR(1) process (unit variance, scaled by ``level``), so how much a run
    moves is set by ``level``, not by the luck of a random walk; a spike is a one-volume head jerk (out and
    back: FD is high at the spike and the volume after it).
    """
    ar = np.zeros((n, 6))
    e = rng.normal(0, np.sqrt(1 - 0.9**2), (n, 6))
    ar[0] = rng.normal(0, 1, 6)
    for t in range(1, n):
        ar[t] = 0.9 * ar[t - 1] + e[t]
    motion = ar * level * np.array([0.05, 0.05, 0.05, 0.001, 0.001, 0.001])
    spikes = np.sort(rng.choice(np.arange(10, n - 10, 6), size=n_spikes, replace=False)) if n_spikes else []
    for t in spikes:
        motion[t, :3] += rng.choice([-1, 1], 3) * rng.uniform(0.15, 0.3, 3)
    d = np.abs(np.diff(motion, axis=0))
    fd = np.r_[np.nan, d[:, :3].sum(1) + 50 * d[:, 3:].sum(1)]
    return motion, fd, np.asarray(spikes, int)


def _confounds(rng, motion: np.ndarray, fd: np.ndarray, spikes: np.ndarray) -> dict[str, np.ndarray]:
    n = len(fd)
    cols: dict[str, np.ndarray] = {}
    for j, name in enumerate(["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]):
        cols[name] = motion[:, j]
    cols["csf"] = 800 + np.cumsum(rng.normal(0, 2, n))
    cols["white_matter"] = 600 + np.cumsum(rng.normal(0, 1, n))
    cols["global_signal"] = 700 + np.cumsum(rng.normal(0, 1.5, n))
    add_expansions(cols)
    cols["framewise_displacement"] = fd
    std_dvars = np.r_[np.nan, 1 + rng.gamma(2, 0.05, n - 1)]
    for t in spikes:
        std_dvars[t:t + 4] = 2.5
    cols["std_dvars"] = std_dvars
    cols["dvars"] = std_dvars * 20
    for k in range(int(np.floor(2 * n * T_R / 128.0))):
        cols[f"cosine{k:02d}"] = np.sqrt(2.0 / n) * np.cos(np.pi * (np.arange(n) + 0.5) * (k + 1) / n)
    return cols


def _regions(rng, motion: np.ndarray, spikes: np.ndarray, fd: np.ndarray, centroids: np.ndarray
             ) -> np.ndarray:
    """(n, N_REGIONS) region signals: networks + noise + linear motion artefact + spikes."""
    n = motion.shape[0]
    latent = np.array([np.convolve(rng.normal(0, 1, n + 8), np.ones(5) / np.sqrt(5), "same")[4:-4]
                       for _ in range(3)]).T
    net = np.arange(N_REGIONS) % 3
    signal = latent[:, net] + rng.normal(0, 1.0, (n, N_REGIONS))
    pos = centroids / 40.0  # spatially smooth weights: nearby regions get the same artefact
    weights = np.column_stack([1.0 + pos @ rng.normal(0, 1, 3) for _ in range(6)]).T  # (6, N_REGIONS)
    weights[3:] *= 50.0  # rotations (rad) on a 50 mm sphere, as FD counts them
    linear = (motion - motion.mean(axis=0)) @ weights * 7.5
    spike = np.zeros((n, N_REGIONS))
    gain = 1.0 + 0.3 * pos[:, 2]
    for t in spikes:
        for lag, decay in enumerate((1.0, 0.8, 0.6, 0.4)):
            if t + lag < n:
                spike[t + lag] += 8.0 * fd[t] * decay * gain
    return signal + linear + spike


def make_motion_dataset(root: str | Path, *, n_participants: int = 12, n_volumes: int = 120,
                        seed: int = 7) -> MotionDataset:
    """Write the dataset (raw ``bids/`` with ``derivatives/fmriprep``) and the atlas; see the module doc.

    The last participant is the high-motion one the default exclusion rule drops (mean FD > 0.25 mm).
    """
    root = Path(root)
    bids = root / "bids"
    fmriprep = bids / "derivatives" / "fmriprep"
    fmriprep.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    brain = _brain()
    labels = _parcels(brain, rng)
    atlas, table = root / "atlas-leak_dseg.nii.gz", root / "atlas-leak_dseg.tsv"
    nib.save(nib.Nifti1Image(labels, AFFINE), atlas)
    table.write_text("index\tname\n" + "".join(f"{k}\tregion{k:02d}\n" for k in range(1, N_REGIONS + 1)))
    centroids = np.array([nib.affines.apply_affine(AFFINE, np.argwhere(labels == k).mean(0))
                          for k in range(1, N_REGIONS + 1)])
    (bids / "dataset_description.json").write_text(json.dumps(
        {"Name": "motion leak", "BIDSVersion": "1.9.0", "DatasetType": "raw"}))
    (fmriprep / "dataset_description.json").write_text(json.dumps({
        "Name": "fMRIPrep", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "fMRIPrep", "Version": "24.1.1"}]}))
    levels = np.r_[rng.permutation(np.linspace(0.2, 1.4, n_participants - 1)), 3.2]
    ages = rng.uniform(20, 60, n_participants).round(1)
    sexes = rng.choice(["F", "M"], n_participants)
    rows, mean_fd = ["participant_id\tage\tsex"], {}
    for i, level in enumerate(levels):
        sub = f"{i + 1:02d}"
        rows.append(f"sub-{sub}\t{ages[i]}\t{sexes[i]}")
        n_spikes = 0 if i == n_participants - 1 else int(round(5 * level))
        motion, fd, spikes = _motion(rng, n_volumes, level, n_spikes)
        mean_fd[sub] = float(np.nanmean(fd))
        regions = _regions(rng, motion, spikes, fd, centroids)
        _write_run(bids, fmriprep, sub, labels, brain, regions, rng)
        _write_tsv(fmriprep / f"sub-{sub}" / "func" / f"sub-{sub}_task-rest_desc-confounds_timeseries.tsv",
                   _confounds(rng, motion, fd, spikes))
    (bids / "participants.tsv").write_text("\n".join(rows) + "\n")
    return MotionDataset(bids=bids, atlas=atlas, atlas_labels=table, mean_fd=mean_fd,
                         excluded=f"{n_participants:02d}")


def _write_run(bids: Path, fmriprep: Path, sub: str, labels, brain, regions, rng) -> None:
    """Raw placeholder BOLD + JSON; fMRIPrep's MNI BOLD (each voxel: its region's signal + noise), mask, JSON."""
    n = regions.shape[0]
    stem = f"sub-{sub}_task-rest"
    raw, der = bids / f"sub-{sub}" / "func", fmriprep / f"sub-{sub}" / "func"
    raw.mkdir(parents=True, exist_ok=True)
    der.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, n), np.int16), AFFINE), raw / f"{stem}_bold.nii.gz")
    (raw / f"{stem}_bold.json").write_text(json.dumps({"RepetitionTime": T_R, "TaskName": "rest"}))
    data = np.zeros(SHAPE + (n,), np.float32)
    vox = labels[brain] - 1
    data[brain] = (1000 + 20 * regions[:, vox] + rng.normal(0, 10, (n, vox.size))).T
    img = nib.Nifti1Image(data, AFFINE)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = T_R
    nib.save(img, der / f"{stem}_space-{SPACE}_desc-preproc_bold.nii.gz")
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), AFFINE), der / f"{stem}_space-{SPACE}_desc-brain_mask.nii.gz")
    (der / f"{stem}_space-{SPACE}_desc-preproc_bold.json").write_text(json.dumps(
        {"RepetitionTime": T_R, "StartTime": T_R / 2, "SkullStripped": False, "TaskName": "rest"}))
    (der / f"{stem}_desc-confounds_timeseries.json").write_text("{}")
