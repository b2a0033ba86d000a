"""The raw dataset's ``participants.tsv``, as the loader (``y`` of ``kind="connectivity"``) and the group level (the
``age`` and ``sex`` covariates of QC-FC) read it. Before: a participant on two rows was read from its last row
without a word; ``age`` written ``NaN`` for one participant made every edge's QC-FC n/a with only "SVD did not
converge"; an empty cell or ``NaN`` in the ``y`` column turned every ``y`` into text (``'23'``, ``''``); ids
without ``sub-`` gave "no run has a 'age' value"."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import bidsapp
from bidsapp.bids.participants import Participants
from bidsapp.cli.run import main
from bidsapp.workflows.denoising_benchmark import participant_covariates


def _listing(folder):
    return sorted((str(p.relative_to(folder)), *((p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else ()))
                  for p in folder.rglob("*"))


def test_a_participant_on_two_rows_is_refused_by_the_loader(atlas_outputs, tmp_path):
    _, out, _ = atlas_outputs
    (tmp_path / "participants.tsv").write_text("participant_id\tage\nsub-01\t24\nsub-02\t31\nsub-01\t70\n")
    with pytest.raises(ValueError, match=r"participants.tsv: participant_id sub-01 is on 2 rows.*keep one row per "
                                         r"participant"):
        bidsapp.dataset(out, kind="connectivity", y="age", bids_dir=tmp_path)


def test_a_participant_on_two_rows_is_refused_by_the_group_level_before_any_write(atlas_outputs, tmp_path, capsys):
    bids, out, _ = atlas_outputs
    shutil.copytree(bids, tmp_path / "bids")
    shutil.copytree(out, tmp_path / "out")
    with open(tmp_path / "bids" / "participants.tsv", "a") as fh:
        fh.write("sub-02\t99\n")
    before = _listing(tmp_path / "out")
    assert main([str(tmp_path / "bids"), str(tmp_path / "out"), "group", "--nprocs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert f"{tmp_path / 'bids' / 'participants.tsv'}: participant_id sub-02 is on 2 rows" in err[-1]
    assert _listing(tmp_path / "out") == before


def test_ids_without_the_sub_prefix_are_said(atlas_outputs, tmp_path, capsys):
    bids, out, _ = atlas_outputs
    (tmp_path / "participants.tsv").write_text("participant_id\tage\n01\t24\n02\t31\n")
    with pytest.raises(ValueError, match=r"participant_id values lack the sub- prefix \(2 of 2, e.g. '01'\).*"
                                         r"write 'sub-01'"):
        bidsapp.dataset(out, kind="connectivity", y="age", bids_dir=tmp_path)
    (tmp_path / "participants.tsv").write_text('participant_id\tage\n"sub-01"\t24\n')  # quoted: the quotes go
    with pytest.raises(ValueError, match=r"write 'sub-01' without quotes \(TSV cells are not quoted\)"):
        bidsapp.dataset(out, kind="connectivity", y="age", bids_dir=tmp_path)
    (tmp_path / "participants.tsv").write_text("participant_id\tage\n01\t24\n02\t31\n")
    shutil.copytree(bids, tmp_path / "bids")
    shutil.copy(tmp_path / "participants.tsv", tmp_path / "bids" / "participants.tsv")
    assert main([str(tmp_path / "bids"), str(out), "group", "--nprocs", "1"]) == 2
    assert "lack the sub- prefix" in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("cell", ["", "NaN", "nan", "n/a"])
def test_an_empty_or_nan_y_is_missing_and_numbers_stay_numbers(atlas_outputs, tmp_path, cell):
    _, out, _ = atlas_outputs
    (tmp_path / "participants.tsv").write_text(f"participant_id\tage\nsub-01\t{cell}\nsub-02\t31\n")
    with pytest.warns(UserWarning, match=r"2 run\(s\) left out: their participant has no 'age'.*sub-01"):
        ds = bidsapp.dataset(out, kind="connectivity", y="age", bids_dir=tmp_path)
    assert ds.y.dtype == np.float64 and ds.y.tolist() == [31.0, 31.0]


def test_text_y_stays_text(atlas_outputs, tmp_path):
    _, out, _ = atlas_outputs
    (tmp_path / "participants.tsv").write_text("participant_id\tgroup\nsub-01\tpatient\nsub-02\t001\n")
    ds = bidsapp.dataset(out, kind="connectivity", y="group", bids_dir=tmp_path)
    assert ds.y.tolist() == ["patient", "patient", "001", "001"]


def _participants(rows: dict[str, dict[str, str]]) -> Participants:
    return Participants(path=None, columns=["participant_id", "age", "sex"],
                        rows={pid: {"participant_id": pid, **row} for pid, row in rows.items()})


@pytest.mark.parametrize("age", ["NaN", "inf", "-Infinity"])
def test_a_non_finite_covariate_leaves_the_covariates_out_naming_participant_and_column(age):
    """As for ``n/a`` (the covariates are left out, the note says why), never "SVD did not converge"."""
    rows = {f"sub-{k:02d}": {"age": str(20 + k), "sex": "MF"[k % 2]} for k in range(1, 7)}
    rows["sub-04"]["age"] = age
    cov, names, why = participant_covariates(_participants(rows), [f"{k:02d}" for k in range(1, 7)])
    assert cov is None and names == []
    assert why == f"age of sub-04 in participants.tsv is {age!r}, not a finite number (write n/a for a missing value)"
    rows["sub-04"]["age"] = "n/a"
    assert participant_covariates(_participants(rows), [f"{k:02d}" for k in range(1, 7)])[2] == \
        "age missing for sub-04 in participants.tsv"
    rows["sub-04"]["age"] = "24"
    cov, names, why = participant_covariates(_participants(rows), [f"{k:02d}" for k in range(1, 7)])
    assert why is None and names == ["age", "sex=M"] and np.isfinite(cov).all()
