"""The nipype nodes are thin: check one wiring detail each, on generated data."""

import json

import numpy as np
import pytest

from bidsapp.interfaces.segment import SegmentTrials


def lss_segment_node(tmp_path, n: int, t_r: float, events: str) -> SegmentTrials:
    """A segmentation node with LSS on a random (n, 4) cleaned array, every volume kept, and ``events`` (the
    rows of an events.tsv after its header), trial window 0-6 s."""
    np.save(tmp_path / "cleaned.npy", np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32))
    np.save(tmp_path / "op.npy", np.eye(n))
    rows = ["volume\tonset\tkept\trow\tframewise_displacement"]
    rows += [f"{i}\t{i * t_r}\tTrue\t{i}\t0.1" for i in range(n)]
    (tmp_path / "samples.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "events.tsv").write_text("onset\tduration\ttrial_type\n" + events)
    return SegmentTrials(cleaned=str(tmp_path / "cleaned.npy"), samples=str(tmp_path / "samples.tsv"),
                         operator=str(tmp_path / "op.npy"), events_file=str(tmp_path / "events.tsv"),
                         t_r=t_r, trial_window=(0.0, 6.0), trial_estimates="lss")


def test_segment_node_marks_late_trials(tmp_path):
    node = lss_segment_node(tmp_path, 30, 2.0, "4\t1\ta\n20\t1\tb\n75\t1\ta\n")
    with pytest.warns(UserWarning, match="1 trial\\(s\\) start outside the run"):
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
    assert info["TrialOffsetsRelativeTo"].startswith("event onset")
    btable = [r.split("\t") for r in open(res.outputs.trial_files["betas_tsv"]).read().splitlines()]
    reasons = [r[btable[0].index("reason")] for r in btable[1:]]
    assert reasons[:2] == ["n/a", "n/a"] and reasons[2].startswith("starts after the end of the run")


def _segment_inputs(tmp_path, n=40):
    X = np.random.default_rng(1).normal(size=(n, 3)).astype(np.float32)
    np.save(tmp_path / "cleaned.npy", X)
    np.save(tmp_path / "op.npy", np.eye(n))
    rows = ["volume\tonset\tkept\trow\tframewise_displacement"]
    rows += [f"{i}\t{i * 2.0}\tTrue\t{i}\t0.1" for i in range(n)]
    (tmp_path / "samples.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "events.tsv").write_text("onset\tduration\ttrial_type\n10\t1\ta\n30\t1\tb\n")
    return dict(cleaned=str(tmp_path / "cleaned.npy"), samples=str(tmp_path / "samples.tsv"),
                operator=str(tmp_path / "op.npy"), events_file=str(tmp_path / "events.tsv"), t_r=2.0,
                trial_window=(0.0, 4.0)), X


def test_hrf_lag_labels_rows_but_segments_stay_on_onset(tmp_path):
    """--hrf-lag shifts the trial labels only; segments are relative to the onset, as recorded."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    kw, X = _segment_inputs(tmp_path)
    lagged = SegmentTrials(hrf_lag=4.0, **kw).run(cwd=str(tmp_path / "a"))
    plain = SegmentTrials(hrf_lag=0.0, **kw).run(cwd=str(tmp_path / "b"))
    seg = np.load(lagged.outputs.trial_files["trials"])
    np.testing.assert_array_equal(seg, np.load(plain.outputs.trial_files["trials"]))
    np.testing.assert_array_equal(seg[0], X[[5, 6, 7]])  # onset 10 s: volumes 5, 6, 7 (offsets 0, 2, 4 s)
    labels = [r.split("\t")[-2] for r in open(lagged.outputs.samples).read().splitlines()[1:]]
    assert labels[7] == "0" and labels[5] == "n/a"  # 10 + 4 s = volume 7


def test_clean_node_names_the_run_on_degenerate_input(tmp_path):
    """A 2-volume detrended run is refused, naming the file and the count."""
    from bidsapp.interfaces.clean import CleanSignals

    np.save(tmp_path / "ts.npy", np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32))
    node = CleanSignals(timeseries=str(tmp_path / "ts.npy"), bold_file="/x/sub-01_bold.nii.gz", denoise="none",
                        t_r=2.0, filter=None)
    with pytest.raises(Exception, match=r"sub-01_bold.nii.gz: cleaning leaves 0 degrees of freedom"):
        node.run(cwd=str(tmp_path))


def test_image_outputs_warn_when_censoring_makes_rows_uneven(tmp_path):
    import json
    import warnings
    from types import SimpleNamespace

    from bidsapp.outputs import writers

    info = tmp_path / "clean.json"
    for censored, warns in (([0, 1, 2], False), ([8, 9], False), ([0, 4, 5], True), ([], False)):
        info.write_text(json.dumps({"CensoredVolumes": censored, "KeptVolumes": 10 - len(censored)}))
        ctx = SimpleNamespace(inputs=SimpleNamespace(clean_info=str(info), t_r=2.0))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            writers.warn_uneven_rows(ctx, [writers.get("npy"), writers.get("dtseries.nii")])
        said = [str(w.message) for w in caught]
        assert bool(said) == warns, (censored, said)
        if warns:
            assert said[0].startswith("2 volume(s) censored inside the run: the rows of the dtseries.nii output")
