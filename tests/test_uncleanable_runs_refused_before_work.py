"""A run whose cleaning leaves no degree of freedom is refused while the invocation is planned, before any node
runs: one line naming the run, what is wrong and the fix; exit 1; nothing in the output folder; no masking.

The planning check and the cleaning node share one rule (``run_design`` for the censoring and the confounds, the
cleaning node's ``cleaning_operator`` for the count), checked here on a seeded sweep: every run the node refuses
is refused at planning, with the same count.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from bidsapp.cli.run import main
from bidsapp.core import cleanable, signal
from bidsapp.core.confounds import RunDesign
from bidsapp.demo import make_dataset

BOLD = "sub-01_task-faces_run-1_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"


def _confounds(bids: Path, run: str = "1") -> Path:
    func = bids / "derivatives" / "fmriprep" / "sub-01" / "func"
    return func / f"sub-01_task-faces_run-{run}_desc-confounds_timeseries.tsv"


def _set_column(tsv: Path, name: str, value: float) -> None:
    """Set a column of an fMRIPrep confounds file to ``value`` (its first row stays n/a, as fMRIPrep writes)."""
    lines = tsv.read_text().splitlines()
    col = lines[0].split("\t").index(name)
    out = [lines[0]]
    for i, line in enumerate(lines[1:]):
        cells = line.split("\t")
        cells[col] = "n/a" if i == 0 else f"{value:g}"
        out.append("\t".join(cells))
    tsv.write_text("\n".join(out) + "\n")


def _invoke(bids: Path, tmp_path: Path, *args: str) -> tuple[int, float]:
    argv = [str(bids), str(tmp_path / "out"), "participant", "--participant-label", "01", "--nprocs", "1",
            "--work-dir", str(tmp_path / "work"), *args]
    t0 = time.process_time()
    return main(argv), time.process_time() - t0


def _assert_refused_before_work(tmp_path: Path, capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"bidsapp: error: {BOLD}: "), err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing written, not even dataset_description.json
    work = tmp_path / "work"
    assert not work.exists() or not list(work.rglob("masking")), "the masking node ran"
    return err


@pytest.fixture
def bids(tmp_path) -> Path:
    make_dataset(tmp_path / "bids", n_volumes=60)
    return tmp_path / "bids"


def test_every_volume_censored_by_framewise_displacement(bids, tmp_path, capsys):
    """fMRIPrep's framewise displacement above --fd-threshold everywhere: scrubbing censors every volume."""
    _set_column(_confounds(bids), "framewise_displacement", 0.8)
    code, cpu = _invoke(bids, tmp_path, "--run", "1", "--denoise", "scrubbing", "--fd-threshold", "0.2")
    err = _assert_refused_before_work(tmp_path, capsys)
    assert code == 1
    assert "censors all 60 volumes (59 with framewise displacement above --fd-threshold 0.2 mm" in err
    assert "raise the thresholds (--fd-threshold, --std-dvars-threshold)" in err
    assert cpu < 3.0  # planning only (a run of this dataset costs several seconds of CPU)


def test_too_many_confounds_for_a_short_run(tmp_path, capsys):
    """46 confound columns + a cosine high-pass + detrending on 38 kept volumes leave nothing (with a Butterworth
    band they leave 1: the filter makes the confounds collinear, their rank is 36)."""
    make_dataset(tmp_path / "bids", n_volumes=40)
    header = _confounds(tmp_path / "bids").read_text().splitlines()[0].split("\t")
    columns = [c for c in header if not c.startswith(("cosine", "non_steady", "framewise", "dvars", "std_dvars"))]
    code, _ = _invoke(tmp_path / "bids", tmp_path, "--run", "1", "--confounds", *columns,
                      "--filter", "cosine", "--high-pass", "0.01")
    err = _assert_refused_before_work(tmp_path, capsys)
    assert code == 1
    assert len(columns) == 46 and ("46 confound column(s) (--confounds) + 1 cosine drift(s) (--filter cosine) + "
                                   "detrending leave 0 degrees of freedom for 38 kept volume(s) of 40 (censored: 2 "
                                   "non-steady-state)") in err
    assert "Use fewer confounds" in err and "--no-detrend" in err


def test_one_impossible_run_refuses_the_invocation(bids, tmp_path, capsys):
    """As every other per-run input error found while planning: the whole invocation is refused, nothing written,
    also for the runs that could be cleaned (fix or leave out the run, then rerun)."""
    _set_column(_confounds(bids, "1"), "framewise_displacement", 0.8)
    code, _ = _invoke(bids, tmp_path, "--denoise", "scrubbing")
    err = _assert_refused_before_work(tmp_path, capsys)
    assert code == 1 and "censors all 60 volumes (59 with framewise displacement above --fd-threshold 0.5 mm" in err
    assert main([str(bids), str(tmp_path / "out"), "participant", "--participant-label", "01", "--run", "2",
                 "--nprocs", "1", "--denoise", "scrubbing"]) == 0


def test_the_cleaning_node_still_refuses(bids, tmp_path, monkeypatch):
    """Defence in depth: the cleaning node's own check stays (a run planned elsewhere, e.g. the API)."""
    from bidsapp.interfaces.clean import CleanSignals

    _set_column(_confounds(bids), "framewise_displacement", 0.8)
    x = np.random.default_rng(0).standard_normal((60, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    node = CleanSignals(timeseries=str(tmp_path / "x.npy"), bold_file=BOLD, confounds_file=str(_confounds(bids)),
                        denoise="scrubbing", strategy_params={"fd_threshold": 0.2}, t_r=2.0)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="censors all 60 volumes"):
        node.run()


SEED = int(os.environ.get("BIDSAPP_TEST_SEED", "20261203"))


def _random_case(rng: np.random.Generator) -> tuple[int, RunDesign, dict]:
    n = int(rng.integers(12, 90))
    t_r = float(rng.choice([0.5, 0.8, 1.0, 2.0, 2.5]))
    nyq = 0.5 / t_r
    kind = rng.choice(["none", "band", "low", "high", "narrow", "cosine"])
    low = high = None
    if kind in ("band", "low"):
        low = float(rng.uniform(0.3, 0.95) * nyq)
    if kind in ("band", "high", "cosine"):
        high = float(rng.uniform(0.005, 0.05))
    if kind == "narrow":
        high = float(rng.uniform(0.01, 0.2) * nyq)
        low = high * float(rng.uniform(1.05, 1.8))
    if low is not None and high is not None and high >= low:
        low = None
    k = int(rng.integers(0, n + 3))
    conf = rng.standard_normal((n, k)) if k else None
    censored = rng.random(n) < rng.uniform(0, 0.6)
    censored[rng.integers(n)] = False
    keep = np.flatnonzero(~censored) if censored.any() else None
    design = RunDesign(None, None, conf, keep, censored, "")
    clean = {"t_r": t_r, "detrend": bool(rng.random() < 0.8), "standardize": rng.choice(["zscore_sample", None]),
             "standardize_confounds": True, "filter": "cosine" if kind == "cosine" else "butterworth",
             "low_pass": low, "high_pass": high}
    return n, design, clean


def test_planning_refuses_exactly_what_the_cleaning_node_refuses():
    """Seeded sweep (BIDSAPP_TEST_SEED): the count is exact whenever it is taken, and it is taken for every run
    that the cleaning node would refuse (0 degrees of freedom), so no such run reaches the workflow."""
    rng = np.random.default_rng(SEED)
    refused = counted = 0
    for _ in range(250):
        n, design, clean = _random_case(rng)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                op = signal.cleaning_operator(n, confounds=design.confounds, sample_mask=design.sample_mask,
                                              **{k: v for k, v in clean.items() if k != "standardize"})
        except ValueError as exc:  # e.g. too few kept volumes for the Butterworth filter: refused at planning too
            with pytest.raises(ValueError, match=str(exc)[:30]):
                cleanable.count_model(n, design, **clean)
            continue
        exact = signal.degrees_of_freedom(op, clean["standardize"])
        count = cleanable.count_model(n, design, **clean)
        counted += count.dof is not None
        if count.dof is not None:
            assert count.dof == exact, (SEED, n, clean)
        if exact < 1:
            refused += 1
            assert count.dof is not None and count.dof < 1, (SEED, n, clean, exact)
    assert refused >= 20 and counted < 250  # the sweep reaches refusals, and the count spares the clear cases

