"""A new generation removes every file of its output set that it does not list — including files named with
an entity after the stem (``_meas-<measure>_relmat``) — and never a file of another output set."""

from __future__ import annotations

from pathlib import Path

import pytest

from bidsapp.outputs.checksums import ChecksumCache
from bidsapp.outputs.transaction import RunWriter, belongs_to_set

STEM = "sub-01_task-rest_run-1_space-MNI152NLin2009cAsym_atlas-demo"


@pytest.mark.parametrize(("name", "stem", "belongs"), [
    (f"{STEM}_timeseries.tsv.gz", STEM, True),
    (f"{STEM}_meas-PartialCorrelation_relmat.tsv", STEM, True),
    (f"{STEM}_meas-PartialCorrelation_relmat.json", STEM, True),
    (f"{STEM}_desc-simple_timeseries.npy", STEM, False),  # another set: this stem has no desc-
    (f"{STEM}_desc-simple_meas-PearsonCorrelation_relmat.tsv", STEM, False),
    (f"{STEM}_meas-_relmat.tsv", STEM, False),
    (f"{STEM}x_timeseries.npy", STEM, False),
])
def test_which_files_belong_to_an_output_set(name, stem, belongs):
    assert belongs_to_set(name, stem) is belongs


def test_a_new_generation_removes_stale_relmats_and_keeps_other_sets(tmp_path: Path):
    folder = tmp_path / "sub-01" / "func"
    folder.mkdir(parents=True)
    stale = [folder / f"{STEM}_meas-PartialCorrelation_relmat.tsv", folder / f"{STEM}_meas-Covariance_relmat.json"]
    other = [folder / f"{STEM}_desc-simple_timeseries.npy", folder / f"{STEM}_desc-simple_meas-Covariance_relmat.tsv"]
    for path in stale + other:
        path.write_text("old\n")
    writer = RunWriter(folder / f"{STEM}_timeseries.json", ChecksumCache(None))
    writer.begin()
    for name in ("timeseries.tsv.gz", "meas-PearsonCorrelation_relmat.tsv"):
        with writer.put(folder / f"{STEM}_{name}") as tmp:
            tmp.write_text("new\n")
    writer.finish({"Shape": [1, 1]})
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in other)
    assert (folder / f"{STEM}_meas-PearsonCorrelation_relmat.tsv").read_text() == "new\n"
