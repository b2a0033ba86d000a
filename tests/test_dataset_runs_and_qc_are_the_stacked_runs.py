"""``bidsapp.dataset``: a run left out of X (its participant has no ``y`` in participants.tsv, or its every ``y`` is
n/a) stayed in ``ds.runs`` and ``ds.qc``, so row k of ``ds.qc`` was no longer the run of row k of X (the QC of
sub-01 beside the connectivity of sub-02). Now ``runs`` and ``qc`` name the stacked runs only, in X's order."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bidsapp


def _source(stem: str) -> str:
    """``sub-01_task-faces_run-1_space-..._desc-simple`` -> ``sub-01_task-faces_run-1`` (the table's ``source``)."""
    return "_".join(p for p in stem.split("_") if p.split("-")[0] in ("sub", "ses", "task", "run"))


def test_connectivity_runs_of_a_participant_without_y_leave_qc_too(atlas_outputs, tmp_path):
    _, out, _ = atlas_outputs
    (tmp_path / "participants.tsv").write_text("participant_id\tage\nsub-02\t31\n")  # sub-01: no age
    with pytest.warns(UserWarning, match=r"2 run\(s\) left out: their participant has no 'age'.*sub-01"):
        ds = bidsapp.dataset(out, kind="connectivity", y="age", bids_dir=tmp_path)
    assert len(ds.X) == len(ds.qc) == len(ds.runs) == 2
    assert list(ds.qc["run"]) == ds.runs and all(r.startswith("sub-02_") for r in ds.runs)
    assert [_source(r) for r in ds.runs] == list(ds.table["source"])
    np.testing.assert_array_equal(ds.qc["fd_mean"].to_numpy(), ds.table["fd_mean"].to_numpy())


@pytest.mark.parametrize("kind", ["trials", "timeseries"])
def test_runs_whose_every_y_is_na_leave_runs_and_qc(atlas_outputs, kind):
    """``y="session"``: sub-01's runs have no session, so their every row is n/a and they are not stacked."""
    _, out, _ = atlas_outputs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = bidsapp.dataset(out, kind=kind, y="session", atlas="demo")
    assert any("2 run(s) have no row left" in str(w.message) and "sub-01_task-faces_run-1" in str(w.message)
               for w in caught)
    assert len(ds.runs) == len(ds.qc) == 2 and list(ds.qc["run"]) == ds.runs
    assert all(r.startswith("sub-02_") for r in ds.runs)
    assert list(dict.fromkeys(ds.groups)) == [_source(r) for r in ds.runs]  # X's runs, in X's order
    assert set(ds.y) == {"1"}


def test_no_run_with_a_y_is_one_error(atlas_outputs, tmp_path):
    _, out, _ = atlas_outputs
    (tmp_path / "participants.tsv").write_text("participant_id\tage\nsub-01\tn/a\nsub-02\t\n")
    with pytest.raises(ValueError, match=r"participants.tsv: no run's participant has a 'age' value"):
        bidsapp.dataset(out, kind="connectivity", y="age", bids_dir=tmp_path)
