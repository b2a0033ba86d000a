"""A run whose every in-mask voxel is constant over time is cleaned to all zeros: accepted (a column may be constant)
but with one warning naming the run, since a real BOLD run never gives that (a red team's finding: exit 0, zeros, and
no word)."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from bidsapp import demo
from bidsapp.cli.run import main


def test_a_run_of_constant_voxels_warns_once(tmp_path, recwarn):
    bids = tmp_path / "bids"
    demo.make_dataset(bids, n_volumes=40)
    bold = next(bids.rglob("sub-01_task-faces_run-1_*desc-preproc_bold.nii.gz"))
    img = nib.load(bold)
    nib.save(nib.Nifti1Image(np.full(img.shape, 100.0, np.float32), img.affine, img.header), bold)
    code = main([str(bids), str(tmp_path / "out"), "participant", "--participant-label", "01", "--run", "1",
                 "--plugin", "Linear", "--denoise", "none"])
    assert code == 0
    said = [str(w.message) for w in recwarn if "constant over time" in str(w.message)]
    assert len(said) == 1 and bold.name in said[0]
    x = np.load(next((tmp_path / "out").rglob("*_timeseries.npy")))
    assert not x.any()


def test_an_ordinary_run_does_not_warn(tmp_path, recwarn):
    bids = tmp_path / "bids"
    demo.make_dataset(bids, n_volumes=40)
    assert main([str(bids), str(tmp_path / "out"), "participant", "--participant-label", "01", "--run", "1",
                 "--plugin", "Linear", "--denoise", "none"]) == 0
    assert not [w for w in recwarn if "constant over time" in str(w.message)]
