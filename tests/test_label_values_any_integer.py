"""Atlas labels are any integers but 0 (background): a negative label, and a uint32 label beyond 2**31, are columns
that the inverse transform (``to_image``, ``_bold.nii.gz``) paints back at their voxels and that the ``_dseg``
image keeps; a label table's index must be an integer (3.6 named region 3)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from bidsapp.core import masking
from bidsapp.core.columns.labels import Labels

BIG = 3_000_000_000  # a uint32 atlas's label beyond int32


@pytest.fixture
def atlas():
    labels = np.zeros((4, 3, 2), dtype=np.int64)
    labels[0] = -4
    labels[1, :2] = 3
    labels[2] = BIG
    labels[3, 0, 0] = 7
    return labels


def test_every_region_is_painted_back_where_it_is(atlas):
    space = Labels(atlas, np.eye(4))
    assert space.values.tolist() == [-4, 3, 7, BIG]
    values = np.array([10.0, 20.0, 30.0, 40.0], dtype=np.float32)
    image = np.asanyarray(space.inverse(values).dataobj)
    expected = np.select([atlas == v for v in space.values], values, 0.0)
    np.testing.assert_array_equal(image, expected)
    rows = np.stack([values, values * 2])
    volumes = [v.copy() for v in space.inverse_rows([rows])]
    np.testing.assert_array_equal(volumes[1], expected * 2)


def test_positions_are_found_without_a_table_of_the_largest_label(atlas):
    pos = masking.label_positions(atlas, np.array([BIG, -4]))  # a value table would hold 3e9 entries
    assert pos[2, 0, 0] == 0 and pos[0, 0, 0] == 1 and pos[1, 0, 0] == -1 and pos[1, 2, 0] == -1


def test_the_dseg_image_keeps_the_labels(atlas, tmp_path):
    space = Labels(atlas, np.eye(4))
    path = space.save_image(tmp_path / "dseg.nii.gz")
    saved = np.asanyarray(nib.load(path).dataobj)
    np.testing.assert_array_equal(saved, atlas)
    back = Labels.from_outputs(None, path, {"label": [str(v) for v in space.values]})
    np.testing.assert_array_equal(np.asanyarray(back.inverse(np.arange(4.0)).dataobj),
                                  np.select([atlas == v for v in space.values], np.arange(4.0), 0.0))


def test_a_label_table_index_must_be_an_integer(tmp_path):
    table = tmp_path / "atlas.tsv"
    table.write_text("index\tname\n3.6\tA\n")
    with pytest.raises(ValueError, match=r"line 2: index '3.6' is not an integer"):
        masking.read_label_table(table)
    table.write_text("index\tname\n3.0\tA\n-4\tB\n")
    assert masking.read_label_table(table) == {3: "A", -4: "B"}
