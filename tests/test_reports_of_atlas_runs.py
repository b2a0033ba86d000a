"""Atlas, maps and sphere runs: the participant report draws the columns over the run's mean image, the
methods text (logs/CITATION.md, and the report) follows the settings used, and the report renders in
Chromium."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from bidsapp.demo import make_dataset
from tests.browser import CHROMIUM, render


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A generated dataset (sub-01 run-1 is used), a labels atlas, 3 overlapping maps and 2 seeds on its grid."""
    base = tmp_path_factory.mktemp("atlas-reports")
    bids = base / "bids"
    make_dataset(bids, n_volumes=60)
    mask_path = next((bids / "derivatives" / "fmriprep" / "sub-01").rglob("*run-1*desc-brain_mask.nii.gz"))
    img = nib.load(mask_path)
    brain = np.asanyarray(img.dataobj) > 0
    grid = np.indices(brain.shape)
    labels = np.where(brain, 1 + grid[0] * 4 // brain.shape[0], 0).astype(np.int16)
    nib.save(nib.Nifti1Image(labels, img.affine), base / "atlas-quarters_dseg.nii.gz")
    (base / "atlas-quarters_dseg.tsv").write_text("index\tname\n" + "".join(f"{k}\tq{k}\n" for k in range(1, 5)))
    centres = np.argwhere(brain)[[0, len(np.argwhere(brain)) // 2, -1]]
    maps = np.stack([np.exp(-((grid - c[:, None, None, None]) ** 2).sum(0) / 8.0) * brain for c in centres], -1)
    nib.save(nib.Nifti1Image(maps.astype(np.float32), img.affine), base / "atlas-blobs_probseg.nii.gz")
    world = nib.affines.apply_affine(img.affine, centres[:2])
    (base / "seeds.tsv").write_text("x\ty\tz\tname\n" + "".join(f"{x}\t{y}\t{z}\ts{k}\n"
                                                             for k, (x, y, z) in enumerate(world)))
    return base, bids


def _run(dataset, tmp_path, *options):
    from bidsapp.cli.run import main

    base, bids = dataset
    out = tmp_path / "out"
    assert main([str(bids), str(out), "participant", "--participant-label", "01", "--run", "1", "--nprocs", "1",
                 *[str(base / o) if (base / o).exists() and o else o for o in options]]) == 0
    return out


CASES = {
    "labels": (["--atlas", "atlas-quarters_dseg.nii.gz", "--denoise", "scrubbing", "--fd-threshold", "0.35"],
               "atlas regions (colours) over the mean image",
               ["each of the 4 regions of", "framewise displacement above 0.35 mm", "Power et al. 2014"]),
    "maps": (["--atlas", "atlas-blobs_probseg.nii.gz", "--low-pass", "0.1"],
             "maps, each voxel coloured by the map with the largest weight over the mean image",
             ["each of the 3 maps of", "Butterworth low-pass 0.1 Hz"]),
    "spheres": (["--spheres", "seeds.tsv", "--sphere-radius", "6", "--denoise", "compcor"],
                "spheres, each coloured by its seed over the mean image",
                ["within 6 mm of each of the 2 seeds", "CompCor components", "Behzadi"]),
}


@pytest.mark.parametrize("kind", CASES)
def test_atlas_report_and_methods_follow_the_run(dataset, tmp_path, kind):
    options, alt, methods_says = CASES[kind]
    out = _run(dataset, tmp_path, *options)
    sidecar, = out.glob("sub-01/func/*_timeseries.json")
    meta = json.loads(sidecar.read_text())
    assert meta["ColumnSpace"] == kind
    assert any(f["Path"].endswith("_reportdata.npz") for f in meta["OutputFiles"])
    report = (out / "sub-01.html").read_text()
    assert f"alt='{alt}'" in report and "alt='carpet plot before and after cleaning'" in report
    citation = (out / "logs" / "CITATION.md").read_text()
    for words in methods_says:
        assert words in citation and words in report
    assert (out / "logs" / "CITATION.bib").read_text().count("@article{") == citation.count("\n- ")
    if CHROMIUM:
        seen = render(out / "sub-01.html", tmp_path / "render")
        assert (seen.broken, seen.console, seen.external) == ([], [], [])
        assert seen.n_images >= 3  # columns, carpet, trials
