"""The nipype nodes are thin: check one wiring detail each, on generated data."""

import json
import warnings

import numpy as np
import pytest

from bidsapp.interfaces.segment import SegmentTrials


def test_segment_node_marks_late_trials(tmp_path):
    n = 30
    np.save(tmp_path / "cleaned.npy", np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32))
    np.save(tmp_path / "op.npy", np.eye(n))
    rows = ["volume\tonset\tkept\trow\tframewise_displacement"]
    rows += [f"{i}\t{i * 2.0}\tTrue\t{i}\t0.1" for i in range(n)]
    (tmp_path / "samples.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "events.tsv").write_text("onset\tduration\ttrial_type\n4\t1\ta\n20\t1\tb\n75\t1\ta\n")
    node = SegmentTrials(cleaned=str(tmp_path / "cleaned.npy"), samples=str(tmp_path / "samples.tsv"),
                         operator=str(tmp_path / "op.npy"), events_file=str(tmp_path / "events.tsv"),
                         t_r=2.0, trial_window=(0.0, 6.0), trial_estimates="lss")
    with pytest.warns(UserWarning, match="1 trial\\(s\\) start after the end of the run"):
        res = node.run(cwd=str(tmp_path))
    trials = [r.split("\t") for r in open(res.outputs.trial_files["trials_tsv"]).read().splitlines()]
    valid = [r[trials[0].index("valid")] for r in trials[1:]]
    assert valid == ["True", "True", "False"]
    betas = np.load(res.outputs.trial_files["betas"])
    assert np.isnan(betas[2]).all() and np.isfinite(betas[:2]).all()
    samples = open(res.outputs.samples).read().splitlines()
    assert samples[0].endswith("trial\ttrial_type") and samples[3].split("\t")[-2:] == ["0", "a"]
    info = json.loads(open(res.outputs.info).read())
    assert info["NTrials"] == 3 and info["TrialOffsets"] == [0.0, 2.0, 4.0, 6.0]
    warnings.resetwarnings()
