"""--atlas NAME[:desc-DESC][:res-RES]: atlases read by name from a TemplateFlow-layout cache, never downloaded."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from bidsapp.core import atlases

TPL = "MNI152NLin2009cAsym"


@pytest.fixture(scope="module")
def tf_tree(demo_outputs, tmp_path_factory):
    """A TemplateFlow-layout cache: Schaefer2018 (two descs) at 4 mm on the demo's grid and at 2 mm, and DiFuMo
    (probseg) at 4 mm; label tables without res, as TemplateFlow names them."""
    home = tmp_path_factory.mktemp("templateflow")
    tpl = home / f"tpl-{TPL}"
    tpl.mkdir()
    bids = demo_outputs / "bidsapp-demo-output" / "bids"
    mask = nib.load(next(bids.rglob("sub-01_task-faces_run-1_space-*_desc-brain_mask.nii.gz")))
    brain = np.asanyarray(mask.dataobj) > 0
    i = np.indices(brain.shape)
    parcels = np.where(brain, 1 + (i[0] >= brain.shape[0] // 2) + 2 * (i[2] >= brain.shape[2] // 2), 0)
    stem = f"tpl-{TPL}_atlas-Schaefer2018_desc-100Parcels7Networks"
    name = stem[len(TPL) + 5:]
    nib.save(nib.Nifti1Image(parcels.astype(np.int16), mask.affine), tpl / f"tpl-{TPL}_res-04_{name}_dseg.nii.gz")
    fine = mask.affine.copy()
    fine[:3, :3] /= 2
    nib.save(nib.Nifti1Image(np.zeros((36, 44, 36), np.int16), fine), tpl / f"tpl-{TPL}_res-02_{name}_dseg.nii.gz")
    (tpl / f"{stem}_dseg.tsv").write_text("index\tname\n1\tLH_Vis\n2\tRH_Vis\n3\tLH_Default\n4\tRH_Default\n")
    other = f"tpl-{TPL}_res-04_atlas-Schaefer2018_desc-200Parcels7Networks_dseg.nii.gz"
    nib.save(nib.Nifti1Image(parcels.astype(np.int16), mask.affine), tpl / other)
    maps = np.stack([np.where(parcels == k, 0.8, 0.0) + 0.05 * brain for k in (1, 2, 3)], -1)
    nib.save(nib.Nifti1Image(maps.astype(np.float32), mask.affine),
             tpl / f"tpl-{TPL}_res-04_atlas-DiFuMo_desc-64dimensions_probseg.nii.gz")
    return home, bids, mask


def test_resolve_closest_resolution_and_labels(tf_tree):
    home, _, mask = tf_tree
    path, table = atlases.resolve("Schaefer2018:desc-100Parcels7Networks", TPL, mask.affine, home)
    assert "_res-04_" in path.name and table.name.endswith("desc-100Parcels7Networks_dseg.tsv")
    fine = mask.affine.copy()
    fine[:3, :3] /= 2
    assert "_res-02_" in atlases.resolve("Schaefer2018:desc-100Parcels7Networks", TPL, fine, home)[0].name
    assert "_res-02_" in atlases.resolve("Schaefer2018:desc-100Parcels7Networks:res-2", TPL, mask.affine,
                                         home)[0].name


def test_resolve_errors(tf_tree):
    home, _, mask = tf_tree
    with pytest.raises(ValueError, match=r"several versions .*:desc-100Parcels7Networks, :desc-200Parcels7Networks"):
        atlases.resolve("Schaefer2018", TPL, mask.affine, home)
    with pytest.raises(ValueError, match=r"it has: DiFuMo \(desc-64dimensions\); Schaefer2018 \(desc-100Parcels7"
                                         r"Networks, desc-200Parcels7Networks\)\. If TemplateFlow has it, "
                                         r"fetch it once with: "
                                         r"bidsapp-fetch-templates --atlas Gordon2016 --space MNI152NLin2009cAsym"):
        atlases.resolve("Gordon2016", TPL, mask.affine, home)
    with pytest.raises(ValueError, match="space 'T1w' is the participant's own, not a TemplateFlow template"):
        atlases.resolve("Schaefer2018", "T1w", mask.affine, home)
    with pytest.raises(ValueError, match=r"cache .* has no tpl-MNI152NLin6Asym, the runs' space; if TemplateFlow has "
                                         r"the atlas, fetch it once with: bidsapp-fetch-templates --atlas "
                                         r"Schaefer2018:desc-400Parcels7Networks --space MNI152NLin6Asym"):
        atlases.resolve("Schaefer2018:desc-400Parcels7Networks", "MNI152NLin6Asym", mask.affine, home)
    assert atlases.looks_like_name("DiFuMo:desc-256dimensions:res-2") and not atlases.looks_like_name("a/b.nii.gz")


def test_atlas_by_name_end_to_end(tf_tree, tmp_path, monkeypatch):
    """Schaefer2018 by name: labels named from its TSV, Sources name the TemplateFlow file; DiFuMo: maps."""
    import bidsapp
    from bidsapp.cli.run import main

    home, bids, mask = tf_tree
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(home))
    out = tmp_path / "out"
    common = [str(bids), str(out), "participant", "--participant-label", "01", "--nprocs", "1",
              "--trial-estimates", "lss", "--output-format", "npy", "tsv.gz", "nii.gz",
              "--work-dir", str(tmp_path / "w")]
    assert main([*common, "--atlas", "Schaefer2018:desc-100Parcels7Networks"]) == 0
    run = bidsapp.load(out, subject="01", run=1, atlas="Schaefer2018100Parcels7Networks")
    assert run.kind == "labels" and run.features["name"].tolist() == ["LH_Vis", "RH_Vis", "LH_Default", "RH_Default"]
    uris = {s["Role"]: s["URI"] for s in run.meta["Sources"]}
    assert uris["atlas"] == (f"bids:templateflow:tpl-{TPL}/tpl-{TPL}_res-04_atlas-Schaefer2018_"
                             "desc-100Parcels7Networks_dseg.nii.gz")
    assert uris["atlas_labels"].startswith("bids:templateflow:")
    assert run.to_image(np.arange(4.0)).shape == mask.shape and run.betas.shape[1] == 4
    assert main([*common, "--atlas", "DiFuMo:desc-64dimensions"]) == 0
    maps = bidsapp.load(out, subject="01", run=1, atlas="DiFuMo64dimensions")
    assert maps.kind == "maps" and maps.X.shape[1] == 3
    assert main([str(bids), str(out), "group"]) == 0
    meta = json.loads(next(out.rglob("*run-1*atlas-DiFuMo64dimensions*_timeseries.json")).read_text())
    assert meta["ColumnSpace"] == "maps"


def test_unknown_atlas_name_one_line(tf_tree, tmp_path, monkeypatch, capsys):
    from bidsapp.cli.run import main

    home, bids, _ = tf_tree
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(home))
    out = tmp_path / "out"
    code = main([str(bids), str(out), "participant", "--participant-label", "01", "--atlas", "Gordon2016"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "Gordon2016: not in the local TemplateFlow cache" in err[-1] and "Schaefer2018 (" in err[-1]
    assert not list(out.rglob("sub-01*"))


def test_fetch_command_asks_templateflow_for_images_and_tables(capsys):
    """bidsapp-fetch-templates --atlas: the images (dseg and probseg) and the label tables, nothing else."""
    from bidsapp.cli.fetch_templates import fetch_atlas

    calls = []

    class FakeApi:
        def get(self, space, **query):
            calls.append((space, query))
            return [f"/tf/{query['suffix']}{query['extension']}"] if query["suffix"] == "dseg" else []

    assert fetch_atlas(FakeApi(), TPL, "Schaefer2018:desc-400Parcels7Networks") == 0
    assert {(q["suffix"], q["extension"]) for _, q in calls} == {("dseg", ".nii.gz"), ("probseg", ".nii.gz"),
                                                                  ("dseg", ".tsv"), ("probseg", ".tsv")}
    assert all(q["atlas"] == "Schaefer2018" and q["desc"] == "400Parcels7Networks" for _, q in calls)
    assert "/tf/dseg.nii.gz" in capsys.readouterr().out

    class Nothing:
        def get(self, space, **query):
            return []

    assert fetch_atlas(Nothing(), TPL, "Gordon2016") == 1
    assert "TemplateFlow has no atlas Gordon2016" in capsys.readouterr().err
