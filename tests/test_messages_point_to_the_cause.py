"""Messages that point to the cause (issue 22): surface runs without vertex coordinates say for how many columns
and why, and the sidecar records what was used; the report says what cleaning did."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bidsapp.bids.collect import collect_runs
from bidsapp.cli.parser import parse_args
from bidsapp.cli.plan import vertex_coordinates
from bidsapp.cli.run import main
from bidsapp.demo import make_dataset
from bidsapp.reports.run_report import cleaning_summary

GIFTI = "sub-03_task-faces_run-1_hemi-L_space-fsaverage5_bold.func.gii"
CIFTI = "sub-03_task-faces_run-1_space-fsLR_den-91k_bold.dtseries.nii"


@pytest.fixture(scope="module")
def surface_bids(tmp_path_factory):
    bids = tmp_path_factory.mktemp("surf") / "bids"
    make_dataset(bids, n_volumes=40, grayordinates=True)
    return bids


def _surface(path: Path, n: int) -> None:
    img = nib.GiftiImage()
    img.add_gifti_data_array(nib.gifti.GiftiDataArray(np.zeros((n, 3), np.float32), intent="NIFTI_INTENT_POINTSET"))
    nib.save(img, path)


def _coordinates(bids: Path, *args: str) -> tuple[str, list[str]]:
    """The sidecar's VertexCoordinates of sub-03's run, and the warnings said while planning it."""
    s = parse_args([str(bids), str(bids.parent / "out"), "participant", "--participant-label", "03", *args])
    run, = collect_runs(s.bids_dir, s.fmriprep_dir, participants=["03"], space=s.space, den=s.den,
                        surface=s.surface)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        used = vertex_coordinates(run, s)
    return used, [str(w.message) for w in caught]


def test_cifti_without_surfaces_warns_how_many_and_why(surface_bids):
    used, said = _coordinates(surface_bids, "--space", "fsLR", "--den", "91k")
    wanted = "sub-03_hemi-L|R_space-fsLR_den-32k_midthickness.surf.gii"
    assert said == [f"{CIFTI}: x, y, z are n/a for 59,412 of 91,282 columns (the surface vertices): no midthickness "
                    f"surface found ({wanted} in the fMRIPrep folder); add fMRIPrep's anat surfaces of the run's "
                    "mesh, or use --surface none."]
    assert used == f"none: no midthickness surface found ({wanted} in the fMRIPrep folder); x, y, z are n/a for " \
                   "59412 surface vertices"
    used, said = _coordinates(surface_bids, "--space", "fsLR", "--den", "91k", "--surface", "none")
    assert said == [] and used == "none (--surface none): x, y, z are n/a for surface vertices"


def test_gifti_surfaces_of_another_mesh_or_one_hemisphere(surface_bids, tmp_path):
    import shutil

    bids = tmp_path / "bids"
    shutil.copytree(surface_bids, bids)
    anat = bids / "derivatives" / "fmriprep" / "sub-03" / "anat"
    anat.mkdir()
    for hemi in "LR":  # fMRIPrep's fsnative surfaces (no space entity): not the run's fsaverage5 mesh
        _surface(anat / f"sub-03_hemi-{hemi}_pial.surf.gii", 7)
    used, said = _coordinates(bids, "--space", "fsaverage5", "--surface", "pial")
    why = ("the participant's pial surfaces are on another mesh (space-fsnative), not the run's "
           "(sub-03_hemi-L|R_space-fsaverage5_pial.surf.gii not found)")
    assert said == [f"{GIFTI}: x, y, z are n/a for 20,484 of 20,484 columns (the surface vertices): {why}; add "
                    "fMRIPrep's anat surfaces of the run's mesh, or use --surface none."]
    assert used.startswith(f"none: {why}")
    _surface(anat / "sub-03_hemi-L_space-fsaverage5_pial.surf.gii", 10242)
    used, said = _coordinates(bids, "--space", "fsaverage5", "--surface", "pial")
    assert "only the hemi-L file of sub-03_hemi-L|R_space-fsaverage5_pial.surf.gii was found" in said[0]
    _surface(anat / "sub-03_hemi-R_space-fsaverage5_pial.surf.gii", 10242)
    used, said = _coordinates(bids, "--space", "fsaverage5", "--surface", "pial")
    assert said == [] and used == "pial surfaces (Sources surface_L, surface_R)"


def test_sidecar_records_the_surface_actually_used(surface_bids, tmp_path):
    """The issue saw Parameters.surface = midthickness on runs whose x, y, z were all n/a."""
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match=r"x, y, z are n/a for 20,484 of 20,484 columns"):
        assert main([str(surface_bids), str(out), "participant", "--participant-label", "03", "--space",
                     "fsaverage5", "--nprocs", "1"]) == 0
    sidecar, = out.glob("sub-03/func/*_space-fsaverage5_desc-simple_timeseries.json")
    meta = json.loads(sidecar.read_text())
    assert meta["Parameters"]["surface"] == "none"
    assert meta["Grayordinates"]["VertexCoordinates"].startswith("none: no midthickness surface found")
    report = (out / "sub-03.html").read_text()
    assert "linear detrend, no temporal filter, z-scored (zscore_sample), no smoothing" in report
    assert "low_pass=None" not in report


@pytest.mark.parametrize("params, words", [
    (dict(detrend=True, filter="butterworth", low_pass=None, high_pass=None, standardize="zscore_sample",
          smoothing_fwhm=None), "linear detrend, no temporal filter, z-scored (zscore_sample), no smoothing"),
    (dict(detrend=False, filter="butterworth", low_pass=0.1, high_pass=0.01, standardize="psc", smoothing_fwhm=6.0),
     "no detrend, Butterworth band-pass 0.01-0.1 Hz, percent signal change (psc), smoothed 6 mm FWHM"),
    (dict(detrend=True, filter="butterworth", low_pass=0.08, high_pass=None, standardize=None, smoothing_fwhm=0),
     "linear detrend, Butterworth low-pass 0.08 Hz, not standardized, no smoothing"),
    (dict(detrend=True, filter="cosine", low_pass=None, high_pass=0.008, standardize=None, smoothing_fwhm=None),
     "linear detrend, cosine (DCT) high-pass 0.008 Hz, not standardized, no smoothing"),
    (dict(detrend=True, filter=None, low_pass=None, high_pass=None, standardize=None, smoothing_fwhm=None),
     "linear detrend, no temporal filter, not standardized, no smoothing"),
])
def test_report_says_what_cleaning_did(params, words):
    assert cleaning_summary(params) == words
