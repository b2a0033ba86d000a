"""The group report: every run in the QC table, the runs left out of the intersection masks and why, the
benchmark figures per strategy when given, and what could not be computed."""

from __future__ import annotations

import json
import shutil

import numpy as np

from bidsapp.reports.group import group_report
from tests.browser import CHROMIUM, render


def test_group_report_lists_runs_left_out_and_benchmark(demo_outputs, tmp_path):
    from bidsapp.cli.run import main

    out = tmp_path / "out"
    shutil.copytree(demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp", out)
    assert main([str(demo_outputs / "bidsapp-demo-output" / "bids"), str(out), "group"]) == 0
    report = (out / "group.html").read_text()
    runs = [r.split("\t")[0] for r in (out / "group_runs.tsv").read_text().splitlines()[1:]]
    assert len(runs) == 6 and all(f"<td>{r}</td>" in report for r in runs)
    assert "fd_mean (mm)" in report and "No run was left out" in report
    assert "Denoising benchmark" in report  # what was (not) computed, said by the benchmark section

    mask_json = next(out.glob("space-MNI*_desc-intersection_mask.json"))
    meta = json.loads(mask_json.read_text())
    meta["LeftOut"] = {"sub-09_task-x_desc-brain_mask.nii.gz": "grid (2, 2, 2) differs"}
    mask_json.write_text(json.dumps(meta))
    rng = np.random.default_rng(0)
    edges = {f"atlas-A_space-MNI_desc-{d}": {"qcfc": rng.normal(m, 0.1, 45), "distance": rng.uniform(5, 90, 45)}
             for d, m in (("simple", 0.2), ("scrubbing", 0.0))}
    path = group_report(out, benchmark_html="<table><tr><td>benchmark table</td></tr></table>", edges=edges,
                        notes=["QC-FC needs at least 3 participants <per strategy>"])
    report = path.read_text()
    assert "<td>sub-09_task-x_desc-brain_mask.nii.gz</td><td>grid (2, 2, 2) differs</td>" in report
    assert "benchmark table" in report and "alt='QC-FC histograms'" in report
    assert "alt='QC-FC distance dependence'" in report
    assert "&lt;per strategy&gt;" in report  # notes are text, not HTML
    if CHROMIUM:
        seen = render(path, tmp_path / "render")
        assert (seen.broken, seen.console, seen.external, seen.n_images) == ([], [], [], 2)


def test_a_stray_copy_of_a_participant_folder_is_not_more_runs_at_the_group_level(demo_outputs, tmp_path):
    """The group level sees the runs the loader sees: ``sub-01_old`` (a backup) is not a participant."""
    from bidsapp.cli.run import main

    out = tmp_path / "out"
    shutil.copytree(demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp", out)
    shutil.copytree(out / "sub-01", out / "sub-01_old")
    assert main([str(demo_outputs / "bidsapp-demo-output" / "bids"), str(out), "group"]) == 0
    runs = [r.split("\t")[0] for r in (out / "group_runs.tsv").read_text().splitlines()[1:]]
    assert len(runs) == 6 and len(set(runs)) == 6


def test_one_run_written_twice_is_refused_at_the_group_level_as_by_the_loader(demo_outputs, tmp_path, capsys):
    from bidsapp.cli.run import main

    out = tmp_path / "out"
    shutil.copytree(demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp", out)
    folder = out / "sub-01" / "func"
    for f in list(folder.glob("*_run-1_*")):
        shutil.copy(f, folder / f.name.replace("_run-1_", "_run-01_"))
    assert main([str(demo_outputs / "bidsapp-demo-output" / "bids"), str(out), "group"]) == 2
    err = capsys.readouterr().err
    assert "have the same entities" in err and "_run-01_" in err and "_run-1_" in err
    assert not (out / "group_runs.tsv").exists() or "_run-01_" not in (out / "group_runs.tsv").read_text()
