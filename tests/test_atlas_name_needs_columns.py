"""--atlas-name names the columns of --atlas / --spheres / --roi-masks; on voxel columns it is refused (it would
put an atlas- entity on voxel outputs)."""

from __future__ import annotations

import pytest

from bidsapp.cli.parser import parse_args
from bidsapp.errors import UsageError


def test_atlas_name_without_columns_refused(demo, tmp_path):
    with pytest.raises(UsageError, match=r"--atlas-name x: names the columns of --atlas, --spheres, --roi-masks"):
        parse_args([str(demo[0]), str(tmp_path / "o"), "participant", "--atlas-name", "x"])
    atlas = tmp_path / "atlas-a_dseg.nii.gz"
    atlas.write_bytes(b"")
    s = parse_args([str(demo[0]), str(tmp_path / "o"), "participant", "--atlas", str(atlas), "--atlas-name", "x"])
    assert s.atlas_name == "x"
