"""Trials at a run's edges, n/a durations, library fallbacks and empty training folds say so."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from bidsapp.core import hrf, signal
from bidsapp.core.trial_models import fit_trials

T_R, N = 2.0, 100  # a 200 s run


def _share_inside(onset: float, duration: float, kept: np.ndarray) -> float:
    """Share of the SPM response's energy at the run's kept volumes, computed by nilearn on a long grid."""
    from nilearn.glm.first_level import compute_regressor

    frames = np.arange(-40, N + 40) * T_R
    reg, _ = compute_regressor(np.array([[onset], [duration], [1.0]]), "spm", frames)
    energy = reg[:, 0] ** 2
    return float(energy[np.isin(np.arange(-40, N + 40), kept)].sum() / energy.sum())


@pytest.mark.parametrize("model", ["lss", "lsa"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_response_retained_is_the_share_inside_the_run(model, seed):
    rng = np.random.default_rng(seed)
    onsets = np.sort(np.concatenate([[-4.0, -30.0], rng.uniform(10, 180, 8).round(1), [192.0, 197.0]]))
    dur = rng.uniform(0.5, 3, onsets.size).round(1)
    censored = np.zeros(N, bool)
    censored[rng.choice(N, 6, replace=False)] = True
    op = signal.cleaning_operator(N, t_r=T_R, filter=None, sample_mask=~censored)
    Y = signal.apply_operator(rng.normal(size=(N, 3)), op, standardize=None)
    fit = fit_trials(model, Y, op.matrix, op.kept, onsets, dur, ["a", "b"] * (onsets.size // 2), t_r=T_R,
                     basis=hrf.make_basis("spm", T_R))
    truth = np.array([_share_inside(o, d, op.kept) for o, d in zip(onsets, dur)])
    np.testing.assert_allclose(fit.response_retained, truth, atol=5e-3)  # oversampling grids differ
    early = onsets < 0
    assert not fit.valid[early].any()
    assert all(r.startswith("starts before the run") for r in np.asarray(fit.reason)[early])
    assert fit.response_retained[onsets == -30.0][0] < 0.01 and fit.response_retained[onsets == 197.0][0] < 0.2
    assert not fit.valid[onsets == 197.0].any()
    mostly_inside = ~early & (truth >= 0.5)
    assert fit.valid[mostly_inside & (onsets < 170)].all()


def test_segment_node_counts_trials_outside_the_run(tmp_path):
    from tests.test_interfaces import lss_segment_node

    node = lss_segment_node(tmp_path, N, T_R, "-4\t1\ta\n40\t1\tb\n90\t1\ta\n250\t1\tb\n")
    with pytest.warns(UserWarning, match="2 trial\\(s\\) start outside the run"):
        res = node.run(cwd=str(tmp_path))
    table = [r.split("\t") for r in open(res.outputs.trial_files["betas_tsv"]).read().splitlines()]
    valid = [r[table[0].index("valid")] for r in table[1:]]
    assert valid == ["False", "True", "True", "False"]


def test_na_durations_warn_once_with_their_count(tmp_path):
    from bidsapp.core.events import read_events

    path = tmp_path / "sub-01_task-a_events.tsv"
    path.write_text("onset\tduration\ttrial_type\n1\tn/a\ta\n5\t2\tb\n9\tn/a\ta\n")
    with pytest.warns(UserWarning, match="sub-01_task-a_events.tsv: 2 event\\(s\\) have duration n/a") as rec:
        events = read_events(path)
    assert len(rec) == 1 and events.duration.tolist() == [0.0, 2.0, 0.0]
    path.write_text("onset\tduration\ttrial_type\n1\t1\ta\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_events(path)


def test_library_fallback_columns_warn_and_fill_the_sidecar(tmp_path):
    from bidsapp.interfaces.segment import SegmentTrials

    rng = np.random.default_rng(3)
    onsets = np.arange(8.0, 180.0, 12.0)
    frames = np.arange(N) * T_R
    from nilearn.glm.first_level import compute_regressor

    reg, _ = compute_regressor(np.vstack([onsets, np.ones_like(onsets), np.ones_like(onsets)]), "spm", frames)
    data = rng.normal(size=(N, 12))
    data[:, :6] += 4 * reg  # six responding columns; six of pure noise fall back to the canonical shape
    np.save(tmp_path / "cleaned.npy", (data - data.mean(axis=0)).astype(np.float32))
    np.save(tmp_path / "op.npy", np.eye(N) - 1.0 / N)
    rows = ["volume\tonset\tkept\trow\tframewise_displacement"]
    rows += [f"{i}\t{i * T_R}\tTrue\t{i}\t0.1" for i in range(N)]
    (tmp_path / "samples.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "events.tsv").write_text("onset\tduration\ttrial_type\n"
                                         + "".join(f"{o}\t1\ta\n" for o in onsets))
    node = SegmentTrials(cleaned=str(tmp_path / "cleaned.npy"), samples=str(tmp_path / "samples.tsv"),
                         operator=str(tmp_path / "op.npy"), events_file=str(tmp_path / "events.tsv"),
                         t_r=T_R, trial_window=(0.0, 6.0), trial_estimates="lsa", hrf="library")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = node.run(cwd=str(tmp_path))
    table = [r.split("\t") for r in open(res.outputs.trial_files["hrf_tsv"]).read().splitlines()]
    n_fallback = sum(r[table[0].index("hrf_fallback")] == "True" for r in table[1:])
    assert n_fallback >= 1
    lines = [str(w.message) for w in rec if "fell back to the canonical shape" in str(w.message)]
    assert len(lines) == 1 and f"{n_fallback} of 12 columns" in lines[0]
    info = json.loads(open(res.outputs.info).read())
    assert f"{n_fallback} of 12 columns" in info["HRFLibrary"]["Fallback"]


def test_reliable_columns_refuses_an_empty_fold():
    import pandas as pd

    from bidsapp.api import Dataset

    table = pd.DataFrame({"stimulus": ["s0", "s1"] * 4, "trial_type": ["a", "b"] * 4,
                          "source": np.repeat(["run-0", "run-1"], 4)})
    ds = Dataset(X=np.random.default_rng(0).normal(size=(8, 5)), y=table["trial_type"].to_numpy(),
                 groups=table["source"].to_numpy(), table=table, features=pd.DataFrame({"column": range(5)}))
    for empty in ([], np.zeros(8, bool)):
        with pytest.raises(ValueError, match="no training rows"):
            ds.reliable_columns(empty, repeats="stimulus")


def test_na_durations_are_said_once_per_invocation(demo, tmp_path, capsys):
    """The events are read while the run is planned (checks) and by its segmentation node: one warning, not two."""
    import shutil

    from bidsapp.cli.run import main

    bids = tmp_path / "bids"
    shutil.copytree(demo[0], bids)
    events = sorted(bids.glob("sub-01/**/*run-1*_events.tsv"))[0]
    lines = events.read_text().splitlines()
    head = lines[0].split("\t")
    rows = [r.split("\t") for r in lines[1:]]
    rows[0][head.index("duration")] = "n/a"
    events.write_text("\n".join(["\t".join(head)] + ["\t".join(r) for r in rows]) + "\n")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        assert main([str(bids), str(tmp_path / "out"), "participant", "--participant-label", "01", "--run", "1",
                     "--nprocs", "1", "--trial-estimates", "lss", "--work-dir", str(tmp_path / "work")]) == 0
    said = [str(w.message) for w in rec] + capsys.readouterr().err.splitlines()
    assert sum("1 event(s) have duration n/a" in line for line in said) == 1
