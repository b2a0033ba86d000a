"""logs/CITATION.md: one desc folder whose runs differ (5 regions in sub-01, 6 in the others) was written as two
sections with the same title; --min-coverage and the regions it left out were never said; Ciric 2017 and
Satterthwaite 2013 were listed in the references but cited nowhere in the text."""

from __future__ import annotations

import re

from bidsapp.reports.methods import REFERENCES, methods
from tests.test_methods_text import _run


def _atlas_run(sub: str, n_regions: int, gone: list[str]) -> dict:
    meta = _run(ColumnSpace="labels", Shape=[98, n_regions], atlas_name="demo", min_coverage=0.5,
                BIDSAppRun=f"sub-{sub}_task-faces_run-1_space-MNI152NLin2009cAsym_atlas-demo_desc-simple")
    meta["Parameters"]["min_coverage"] = 0.5
    meta["BIDSAppExcludedRegions"] = gone
    return meta


def test_sections_of_one_desc_name_their_runs_and_the_regions_left_out():
    runs = [_atlas_run("01", 5, ["left_back"])] + [_atlas_run(f"0{k}", 6, []) for k in (2, 3)]
    md, _ = methods(runs)
    titles = re.findall(r"^## desc-.*$", md, flags=re.M)
    assert len(titles) == 2 and len(set(titles)) == 2
    assert titles[0].endswith(": sub-01_task-faces_run-1") and titles[1].endswith(
        ": sub-02_task-faces_run-1, sub-03_task-faces_run-1")
    assert "less than 0.5 of their extent" in md and "(--min-coverage; here 1 region: left_back)" in md
    assert "(--min-coverage; no region was left out)" in md
    assert "5 regions of demo" in md and "6 regions of demo" in md


def test_one_section_keeps_its_plain_title():
    md, _ = methods([_atlas_run(f"0{k}", 6, []) for k in (1, 2)])
    assert "## desc-simple (2 runs; space MNI152NLin2009cAsym)\n" in md


def test_every_listed_reference_is_cited_in_the_text():
    md, _ = methods([_atlas_run("01", 6, [])])
    body, refs = md.split("## References")
    for key, (text, _) in REFERENCES.items():
        if text in refs:
            first_author = text.split(" ", 1)[0].rstrip(",")
            assert first_author in body, f"{key} is listed but not cited in the text"
    assert "Satterthwaite et al. 2013" in body and "Ciric et al. 2017" in body
