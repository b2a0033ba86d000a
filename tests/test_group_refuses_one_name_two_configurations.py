"""Outputs of one name (space, atlas, desc) made with two configurations (half the participants with
``--low-pass 0.08 --fisher-z``, half without: two folders merged, two invocations at once) got one benchmark row
over all the runs, exit 0; ``bidsapp.dataset`` refused the same folder. The group level now refuses it with the
loader's check (one line naming two runs and the parameters that differ, exit 2), before writing anything."""

from __future__ import annotations

import json
import shutil

from bidsapp.cli.run import main


def _listing(folder):
    return sorted((str(p.relative_to(folder)), *((p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else ()))
                  for p in folder.rglob("*"))


def _other_settings(out, participant: str) -> None:
    """The sidecars of a participant's runs as another configuration writes them (``--low-pass 0.08``)."""
    for sidecar in (out / participant).rglob("*_timeseries.json"):
        meta = json.loads(sidecar.read_text())
        meta["Parameters"]["low_pass"] = 0.08
        sidecar.write_text(json.dumps(meta, indent=2))


def test_one_name_made_with_two_configurations_is_refused_before_any_write(atlas_outputs, tmp_path, capsys):
    bids, out, _ = atlas_outputs
    shutil.copytree(out, tmp_path / "out")
    _other_settings(tmp_path / "out", "sub-02")
    before = _listing(tmp_path / "out")
    assert main([str(bids), str(tmp_path / "out"), "group", "--nprocs", "1"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "sub-02_ses-1_task-faces_run-1_space-MNI152NLin2009cAsym_atlas-demo_desc-simple was made with other " \
           "settings than sub-01_task-faces_run-1_space-MNI152NLin2009cAsym_atlas-demo_desc-simple" in line
    assert "(None in the first, 0.08 in the second)" in line and "--replace-outputs" in line
    assert _listing(tmp_path / "out") == before


def test_one_configuration_per_name_still_passes(atlas_outputs, tmp_path):
    bids, out, _ = atlas_outputs
    shutil.copytree(out, tmp_path / "out")
    assert main([str(bids), str(tmp_path / "out"), "group", "--nprocs", "1"]) == 0
    assert (tmp_path / "out" / "group_denoising.tsv").is_file()
