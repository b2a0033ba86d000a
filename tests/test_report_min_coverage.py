"""The participant report says which regions --min-coverage turned into NaN columns, with their coverage (and,
when none was, that every region reached the threshold)."""

from __future__ import annotations

import html
import re

import pandas as pd

from bidsapp.reports.html import participant_report
from bidsapp.reports.run_report import coverage_section, read_run
from tests.test_qc_connectivity_outputs import blocks_run  # noqa: F401 (sub-01 with a poorly covered R7)


def test_the_report_names_the_nan_regions_with_their_coverage(blocks_run):  # noqa: F811
    _, out, _, _ = blocks_run
    sidecars = sorted(out.glob("sub-01/func/*atlas-blocks*_timeseries.json"))
    assert sidecars
    report = participant_report(out, "01").read_text()
    for sidecar in sidecars:
        features = pd.read_csv(sidecar.with_name(sidecar.name.replace("_timeseries.json", "_features.tsv")),
                               sep="\t", na_values=["n/a"], keep_default_na=False).set_index("name")
        section = coverage_section(read_run(sidecar))
        assert section in report
        assert "1 of 7 regions" in section and "--min-coverage 0.5" in section
        cells = re.findall(r"<td>([^<]*)</td>", section)
        assert cells[0] == "R7" and float(cells[1]) == features.loc["R7", "coverage"] < 0.5
        assert html.unescape(cells[2]) == features.loc["R7", "excluded"]
        assert not any(f"<td>R{k}</td>" in section for k in range(1, 7))  # covered regions are not listed


def test_a_run_without_nan_regions_says_so(demo_outputs):
    out = demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp-connectivity"
    section = coverage_section(read_run(sorted(out.glob("sub-01/func/*_timeseries.json"))[0]))
    assert "every region reaches --min-coverage 0.5" in section and "none is a NaN column" in section
    voxels = demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp"
    assert coverage_section(read_run(sorted(voxels.glob("sub-01/func/*_timeseries.json"))[0])) == ""
