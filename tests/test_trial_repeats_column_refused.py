"""A --trial-repeats column the events do not have is refused before any work: exit 2, one line naming the
events file and its columns, nothing written."""

from __future__ import annotations

from bidsapp.cli.run import main


def test_missing_repeat_column_is_refused_before_anything_is_written(demo, tmp_path, capsys):
    root, _ = demo
    out = tmp_path / "out"
    code = main([str(root), str(out), "participant", "--participant-label", "01", "--work-dir", str(tmp_path / "w"),
                 "--trial-estimates", "optimized", "--trial-repeats", "stimx"])
    assert code == 2
    err = capsys.readouterr().err
    line = next(t for t in err.splitlines() if "--trial-repeats stimx" in t)
    assert "_events.tsv: --trial-repeats stimx: no such column (columns: onset, duration, trial_type" in line
    assert not (out / "logs").exists() and not (out / "dataset_description.json").exists()
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())
