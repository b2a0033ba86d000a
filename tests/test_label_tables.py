"""Label tables name each region once; a label the table misses is said, not silently renamed; a misspelt
TemplateFlow atlas gets the closest cached spelling."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest

from bidsapp.core.columns.labels import Labels
from bidsapp.core.masking import read_label_table


@pytest.mark.parametrize("rows, message", [
    ("1\tA\n2\tB\n1\tC\n", "line 4: index 1 is already on line 2"),
    ("1\tA\n2\tB\n3\tA\n", "line 4: name 'A' is already on line 2"),
    ("1\tA\nx\tB\n", "line 3: index 'x' is not an integer"),
])
def test_label_table_names_each_region_once(tmp_path, rows, message):
    (tmp_path / "t.tsv").write_text("index\tname\n" + rows)
    with pytest.raises(ValueError, match=message):
        read_label_table(tmp_path / "t.tsv")


def test_labels_missing_from_the_table_are_said_once_before_the_run(tmp_path):
    affine = np.eye(4)
    labels = np.zeros((6, 6, 6), np.int16)
    labels[:2], labels[2:4], labels[4:] = 1, 2, 7
    nib.save(nib.Nifti1Image(labels, affine), tmp_path / "atlas.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((6, 6, 6, 4), np.float32), affine), tmp_path / "bold.nii.gz")
    (tmp_path / "atlas.tsv").write_text("index\tname\n1\tA\n2\tB\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Labels.check_inputs(tmp_path / "bold.nii.gz", atlas=tmp_path / "atlas.nii.gz",
                            atlas_labels=tmp_path / "atlas.tsv")
    said = [str(w.message) for w in caught]
    assert len(said) == 1 and "1 label(s) of the atlas are not in this label table (7)" in said[0], said
    (tmp_path / "atlas.tsv").write_text("index\tname\n1\tA\n2\tB\n7\tC\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Labels.check_inputs(tmp_path / "bold.nii.gz", atlas=tmp_path / "atlas.nii.gz",
                            atlas_labels=tmp_path / "atlas.tsv")
    assert not caught


def test_misspelt_templateflow_desc_gets_the_cached_spelling(tmp_path):
    from bidsapp.core.atlases import resolve

    tpl = tmp_path / "tpl-MNI152NLin2009cAsym"
    tpl.mkdir()
    img = nib.Nifti1Image(np.ones((4, 4, 4), np.int16), np.diag([2.0, 2, 2, 1]))
    nib.save(img, tpl / "tpl-MNI152NLin2009cAsym_res-02_atlas-Schaefer2018_desc-400Parcels7Networks_dseg.nii.gz")
    with pytest.raises(ValueError) as err:
        resolve("Schaefer2018:desc-400Parcel7Networks", "MNI152NLin2009cAsym", img.affine, tmp_path)
    text = str(err.value)
    assert "Did you mean --atlas Schaefer2018:desc-400Parcels7Networks?" in text and "\n" not in text
    with pytest.raises(ValueError) as err:
        resolve("DiFuMo:desc-64dimensions", "MNI152NLin2009cAsym", img.affine, tmp_path)
    assert "Did you mean" not in str(err.value) and "bidsapp-fetch-templates" in str(err.value)
