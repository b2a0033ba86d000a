"""The outputs specification (bidsapp/outputs/specification.py, rendered as the documentation's Outputs page)
against real outputs, in both directions, so the page cannot drift from what bidsapp writes.

The runs: the demo (volume runs with LSS, a CIFTI-2 run written as dtseries.nii, a GIFTI pair written as
func.gii), a labels atlas with every volume output format, spheres, a dlabel atlas on the CIFTI run, and the
group level on a copy of the demo's outputs.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import generate  # noqa: E402

from bidsapp.outputs import specification as outputs_spec  # noqa: E402


def _labels_atlas(mask_file: Path, out: Path) -> Path:
    img = nib.load(mask_file)
    labels = np.where(np.asanyarray(img.dataobj) > 0, 1 + np.indices(img.shape)[0] % 4, 0).astype(np.int16)
    nib.save(nib.Nifti1Image(labels, img.affine), out)
    return out


def _seeds(mask_file: Path, out: Path) -> Path:
    img = nib.load(mask_file)
    ijk = np.argwhere(np.asanyarray(img.dataobj) > 0)
    xyz = nib.affines.apply_affine(img.affine, ijk[[0, len(ijk) // 2, -1]])
    out.write_text("x\ty\tz\tname\n" + "".join(f"{x:g}\t{y:g}\t{z:g}\tseed{n}\n" for n, (x, y, z) in enumerate(xyz)))
    return out


def _dlabel(out: Path) -> Path:
    from bidsapp.core.grayordinates import write_dlabel
    from bidsapp.demo import fslr_91k_brain_models

    bm = fslr_91k_brain_models()
    write_dlabel(out, 1 + np.arange(len(bm)) % 5, bm, {k: f"parcel{k}" for k in range(1, 6)})
    return out


@pytest.fixture(scope="module")
def output_folders(demo_outputs, tmp_path_factory) -> list[Path]:
    """Output folders of the demo and of the extra runs (each invocation must exit 0)."""
    from bidsapp.cli.run import main

    base = tmp_path_factory.mktemp("spec")
    bids = demo_outputs / "bidsapp-demo-output" / "bids"
    demo = demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp"
    mask = next((bids / "derivatives" / "fmriprep" / "sub-01").rglob("*run-1*desc-brain_mask.nii.gz"))
    inputs = base / "inputs"
    inputs.mkdir()
    extra, group = base / "extra", base / "group"
    one_run = [str(bids), str(extra), "participant", "--participant-label", "01", "--run", "1", "--nprocs", "1"]
    for args in (["--atlas", str(_labels_atlas(mask, inputs / "atlas-test_dseg.nii.gz")),
                  "--output-format", "npy", "tsv.gz", "nii.gz"],
                 ["--spheres", str(_seeds(mask, inputs / "seeds.tsv")), "--filter", "cosine", "--high-pass", "0.01"]):
        assert main(one_run + args) == 0
    assert main([str(bids), str(extra), "participant", "--participant-label", "01", "--nprocs", "1",
                 "--trial-estimates", "optimized", "--desc", "optimized"]) == 0  # the joined trial model's table
    assert main([str(bids), str(extra), "participant", "--participant-label", "03", "--space", "fsLR", "--den", "91k",
                 "--atlas", str(_dlabel(inputs / "atlas-parcels_dseg.dlabel.nii")), "--nprocs", "1"]) == 0
    shutil.copytree(demo, group)
    assert main([str(bids), str(group), "group"]) == 0
    assert main([str(bids), str(extra), "group"]) == 0  # region columns: the denoising benchmark's tables
    return [demo, extra, group, demo.with_name("derivatives-bidsapp-connectivity")]  # the demo's --connectivity run


def _files(folders: list[Path]) -> list[tuple[Path, str]]:
    return [(folder, p.relative_to(folder).as_posix()) for folder in folders for p in sorted(folder.rglob("*"))
            if p.is_file()]


def test_every_file_written_matches_a_pattern(output_folders):
    unmatched = [f"{folder.name}/{rel}" for folder, rel in _files(output_folders) if not outputs_spec.match(rel)]
    assert not unmatched, f"files bidsapp wrote that the outputs specification lacks: {unmatched}"


def test_every_pattern_is_written_by_some_run(output_folders):
    written = [rel for _, rel in _files(output_folders)]
    never = [p for p in outputs_spec.all_patterns() if not any(outputs_spec.compiled(p).match(r) for r in written)]
    assert not never, f"patterns of the outputs specification that no run wrote: {never}"


def test_every_sidecar_key_is_specified_and_written(output_folders):
    keys = {k for folder in output_folders for f in folder.rglob("*_timeseries.json")
            for k in json.loads(f.read_text())}
    assert keys - set(outputs_spec.SIDECAR_KEYS) == set(), "sidecar keys missing from SIDECAR_KEYS"
    assert set(outputs_spec.SIDECAR_KEYS) - keys == set(), "SIDECAR_KEYS that no run sidecar has"


def test_page_columns_are_the_sidecars_columns(output_folders):
    """Each column description of the page is the text of the JSON sidecars written beside the TSVs."""
    from bidsapp.core import columns as spaces
    from bidsapp.outputs import descriptions as columns

    page = generate.outputs_markdown()
    checked = 0
    for folder in output_folders:
        for tsv in folder.rglob("*.tsv"):
            kind = columns.kind_of(tsv)
            if kind is None:
                continue
            written = json.loads(tsv.with_suffix(".json").read_text())
            if kind == "features":
                run_sidecar = json.loads(Path(str(tsv).replace("_features.tsv", "_timeseries.json")).read_text())
                expected = spaces.get(run_sidecar["ColumnSpace"]).feature_descriptions()
            else:
                expected = columns.KINDS[kind]({})
            for name, description in written.items():
                if description["Description"] == columns._EXTRA:
                    continue  # an events.tsv column copied unchanged (the page says so once)
                assert description == expected[name], f"{tsv.name}: column {name}"
                assert f"| `{name}` | {generate._cell(description['Description'])} |" in page
                checked += 1
    assert checked > 100


def test_every_writer_has_a_pattern_and_every_run_pattern_a_writer():
    """The writers registry and the specification name the same run files (before any run)."""
    from bidsapp.outputs.writers import WRITERS

    endings = {f"_{ending}" for w in WRITERS for ending in w.files}
    run_patterns = [p for entry in outputs_spec.OUTPUTS if entry.level == "run" for p in entry.patterns]
    assert [e for e in sorted(endings) if not any(p.endswith(e) for p in run_patterns)] == []
    sidecar = [p for p in run_patterns if not any(p.endswith(e) for e in endings)]
    assert sidecar == ["<run><space>[_atlas-<atlas>]<grid>_desc-<desc>_timeseries.json"]  # the sink's own


def test_patterns_match_what_they_say():
    match = outputs_spec.match
    run = "sub-01/ses-1/func/sub-01_ses-1_task-faces_run-1_space-MNI152NLin2009cAsym"
    assert match(f"{run}_desc-simple_timeseries.npy") and match(f"{run}_atlas-test_desc-simple_timeseries.npy")
    assert match(f"{run}_desc-gmtemplate_mask.nii.gz") and not match(f"{run}_desc-grey_mask.nii.gz")
    assert not match(f"{run}_desc-simple_timeseries.npz")  # another extension
    assert not match("sub-01/anat/sub-01_task-faces_desc-simple_timeseries.npy")  # another folder
    assert not match(f"{run}_desc-sim-ple_timeseries.npy")  # not a label
    assert match("sub-03/func/sub-03_task-faces_run-1_hemi-L_space-fsaverage5_desc-simple_bold.func.gii")
    assert not match("sub-03/func/sub-03_task-faces_run-1_hemi-X_space-fsaverage5_desc-simple_bold.func.gii")
    assert match("logs/settings-20261203T082515-8441-aa173b.json") and not match("logs/notes.txt")
    with pytest.raises(ValueError, match="unknown placeholder <nope>"):
        outputs_spec.compiled("<nope>.npy")


def test_page_lists_every_pattern_and_key():
    page = generate.outputs_markdown()
    for pattern in outputs_spec.all_patterns():
        assert f"- `{pattern}`" in page
    for key in outputs_spec.SIDECAR_KEYS:
        assert f"| `{key}` |" in page
