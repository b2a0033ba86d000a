"""--trial-estimates optimized on every column kind: atlas regions and CIFTI-2 grayordinates from the command line,
their joined betas (library HRF, noise regressors, ridge) readable by bidsapp.dataset(kind="betas")."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

import bidsapp
from bidsapp.cli.run import main


def _check_joined_outputs(out: Path, subject: str, n_columns: int, n_runs: int) -> list[Path]:
    """Each run's betas, betas.tsv, betaquality.tsv and sidecar of one joined model; returns the betas files."""
    betas = sorted(out.glob(f"sub-{subject}/func/*_betas.npy"))
    assert len(betas) == n_runs
    for path in betas:
        b = np.load(path)
        table = pd.read_csv(str(path).replace(".npy", ".tsv"), sep="\t")
        assert b.shape == (len(table), n_columns) and np.isfinite(b[table["valid"]]).all()
        quality = pd.read_csv(str(path).replace("_betas.npy", "_betaquality.tsv"), sep="\t")
        assert len(quality) == n_columns and quality["hrf_shape"].between(0, 19).all()
        assert quality["ridge_fraction"].between(0.05, 1).all()
        meta = json.loads(Path(str(path).replace("_betas.npy", "_timeseries.json")).read_text())
        trials = meta["Trials"]
        assert trials["HRFModel"] == "library" and len(trials["TrialModelRuns"]) == n_runs
        assert sum(s["columns"] for s in trials["HRFLibrary"]["Shapes"]) == n_columns
    return betas


def test_optimized_on_atlas_regions(demo, tmp_path):
    from bidsapp.demo import write_demo_atlas

    root, _ = demo
    atlas = write_demo_atlas(tmp_path)
    out = tmp_path / "out"
    assert main([str(root), str(out), "participant", "--participant-label", "01", "--nprocs", "2", "--mem-gb", "4",
                 "--work-dir", str(tmp_path / "work"), "--trial-estimates", "optimized", "--atlas", str(atlas),
                 "--atlas-labels", str(atlas.with_name("atlas-demo_dseg.tsv"))]) == 0
    betas = _check_joined_outputs(out, "01", 6, 2)
    ds = bidsapp.dataset(out, kind="betas", subject="01")
    assert ds.X.shape == (sum(np.isfinite(np.load(p)).all(axis=1).sum() for p in betas), 6)
    assert ds.kind == "labels" and list(ds.features["name"]) == ["left_back", "right_back", "left_middle",
                                                                 "right_middle", "left_front", "right_front"]
    assert set(ds.y) == {"face", "house"} and np.isfinite(ds.X).all()


def _second_cifti_run(bids: Path) -> None:
    """sub-03's run-1 copied as run-2 (every file), its dtseries with other noise."""
    for src in [p for p in bids.rglob("sub-03_*run-1_*") if p.is_file()]:
        dst = src.with_name(src.name.replace("run-1_", "run-2_"))
        if src.name.endswith("_bold.dtseries.nii"):
            img = nib.load(src)
            data = np.asanyarray(img.dataobj).astype(np.float32)
            data += np.random.default_rng(2).normal(0, data.std(axis=0).mean(), data.shape).astype(np.float32)
            nib.save(nib.Cifti2Image(data, header=img.header, nifti_header=img.nifti_header), dst)
        else:
            shutil.copy(src, dst)


def test_optimized_on_grayordinates(demo_outputs, tmp_path, capsys):
    bids = tmp_path / "bids"
    shutil.copytree(demo_outputs / "bidsapp-demo-output" / "bids", bids,
                    ignore=shutil.ignore_patterns("sub-01", "sub-02"))
    _second_cifti_run(bids)
    out = tmp_path / "out"
    assert main([str(bids), str(out), "participant", "--participant-label", "03", "--space", "fsLR", "--den", "91k",
                 "--nprocs", "2", "--mem-gb", "6", "--work-dir", str(tmp_path / "work"),
                 "--trial-estimates", "optimized"]) == 0
    betas = _check_joined_outputs(out, "03", 91282, 2)
    ds = bidsapp.dataset(out, kind="betas", subject="03")
    assert ds.X.shape[1] == 91282 and ds.X.shape[0] == sum(len(np.load(p)) for p in betas)
    assert set(ds.y) == {"face", "house"}
    # the task drives the first 6000 left-cortex grayordinates: their trial model explains more than the rest
    quality = pd.read_csv(str(betas[0]).replace("_betas.npy", "_betaquality.tsv"), sep="\t")
    assert quality["r2"][:6000].median() > quality["r2"][20000:].median() + 0.05
