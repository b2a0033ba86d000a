"""Under LSS with scrubbing, the QC said "2 valid / 10 invalid" trials while ``_betas.tsv`` held 10 valid
estimates: the QC counted trials whose window holds no censored volume (valid segments), LSS estimates a trial
from the kept volumes of its window. Both counts are now reported, each named for what it counts, in the
sidecar, ``group_runs.tsv`` and the report."""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture(scope="module")
def scrubbed_lss(demo_outputs, tmp_path_factory):
    from bidsapp.cli.run import main

    base = tmp_path_factory.mktemp("lss-scrubbed")
    bids, out = demo_outputs / "bidsapp-demo-output" / "bids", base / "out"
    assert main([str(bids), str(out), "participant", "--participant-label", "01", "--denoise", "scrubbing",
                 "--fd-threshold", "0.3", "--trial-estimates", "lss", "--nprocs", "1",
                 "--work-dir", str(base / "work")]) == 0
    assert main([str(bids), str(out), "group"]) == 0
    return out


def _read(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)


def test_sidecar_group_table_and_report_give_both_counts(scrubbed_lss):
    import bidsapp

    out = scrubbed_lss
    runs = [bidsapp.load(out, subject="01", run=k) for k in ("1", "2")]
    group = _read(out / "group_runs.tsv")
    differ = 0
    for run in runs:
        qc = run.meta["QC"]
        trials = _read(run.folder / f"{run.stem}_trials.tsv")
        betas = _read(run.folder / f"{run.stem}_betas.tsv")
        segments = int(trials["valid"].astype(str).eq("True").sum())
        estimated = int(betas["valid"].astype(str).eq("True").sum())
        assert qc["TrialsValidSegments"]["Value"] == segments
        assert qc["TrialsInvalidSegments"]["Value"] == len(trials) - segments
        assert qc["TrialsEstimated"]["Value"] == estimated and qc["TrialsEstimated"]["Units"] == "trials"
        row = group[group["run"].astype(str).str.startswith(run.stem.split("_space-")[0])].iloc[0]
        assert (row["trials_valid_segments"], row["trials_estimated"]) == (segments, estimated)
        differ += estimated != segments
    assert differ, "scrubbing at 0.3 mm censors volumes inside trial windows of the demo: the counts differ"
    html = (out / "sub-01.html").read_text()
    assert "with a valid segment" in html and "estimated by LSS" in html
    described = (out / "group_runs.json").read_text()
    assert "trials_estimated" in described and "trials_valid_segments" in described
