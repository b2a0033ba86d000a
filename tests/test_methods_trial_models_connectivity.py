"""The methods text describes the trial model, the HRF, the noise regressors, ridge, the cross-validation targets
and the connectivity matrices that the runs' recorded settings say were used, with their references, and says
nothing (cites nothing) about what was not used."""

from __future__ import annotations

import copy
import json

import pytest

from bidsapp.options import OPTIONS
from bidsapp.reports.methods import HRF_PHRASES, methods

HRF_CHOICES = next(o for o in OPTIONS if o.name == "hrf").choices


@pytest.fixture(scope="module")
def lss_meta(demo_outputs):
    """A recorded sidecar of the demo: a voxel run with trials and LSS estimates (SPM HRF)."""
    out = demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp"
    sidecar = sorted(out.glob("sub-01/func/*run-1*_timeseries.json"))[0]
    return dict(json.loads(sidecar.read_text()), BIDSAppRun=sidecar.name[: -len("_timeseries.json")])


def _with(meta: dict, **params) -> dict:
    meta = copy.deepcopy(meta)
    meta["Parameters"].update(params)
    return meta


def _cites(md: str, bib: str, key: str, author: str) -> bool:
    in_md, in_bib = author in md.split("## References")[1], f"@article{{{key}," in bib
    assert in_md == in_bib, key
    return in_md


def test_the_recorded_lss_run(lss_meta):
    assert lss_meta["Parameters"]["trial_estimates"] == "lss" and lss_meta["Parameters"]["hrf"] == "spm"
    md, bib = methods([lss_meta])
    assert "least-squares-separate model (LSS; Mumford et al. 2012)" in md and HRF_PHRASES["spm"] in md
    assert _cites(md, bib, "mumford2012", "Mumford JA")
    for absent in ("LSA", "GLMsingle", "fractional ridge", "noise regressors", "Connectivity", "Cross-validation"):
        assert absent not in md, absent
    for key, author in (("prince2022", "Prince JS"), ("rokem2020", "Rokem A"), ("ledoit2004", "Ledoit O")):
        assert not _cites(md, bib, key, author)


def test_no_trial_estimates_no_trial_model(lss_meta):
    meta = _with(lss_meta, trial_estimates=None)
    meta["Trials"].pop("TrialEstimates")
    md, bib = methods([meta])
    assert "Trials were read" in md and "response estimates" not in md
    assert not _cites(md, bib, "mumford2012", "Mumford JA")


def test_lsa(lss_meta):
    md, bib = methods([_with(lss_meta, trial_estimates="lsa")])
    assert "least-squares-all model (LSA; Mumford et al. 2012)" in md and "LSS" not in md
    assert _cites(md, bib, "mumford2012", "Mumford JA") and not _cites(md, bib, "prince2022", "Prince JS")


def test_optimized_names_each_step_and_its_reference(lss_meta):
    md, bib = methods([_with(lss_meta, trial_estimates="optimized")])
    assert "in the manner of GLMsingle (Prince et al. 2022)" in md
    assert "noise regressors" in md and "fractional ridge regression (Rokem and Kay 2020)" in md
    assert "label-free targets" in md and "the trial labels were never used" in md
    for key, author in (("mumford2012", "Mumford JA"), ("prince2022", "Prince JS"), ("rokem2020", "Rokem A")):
        assert _cites(md, bib, key, author)
    md, _ = methods([_with(lss_meta, trial_estimates="optimized", trial_repeats="stimulus_id")])
    assert "equal values of the events column `stimulus_id`" in md and "label-free" not in md


def test_denoise_and_ridge_alone(lss_meta):
    md, bib = methods([_with(lss_meta, trial_denoise="pca")])
    assert "least-squares-separate" in md and "noise regressors" in md and "ridge" not in md
    assert _cites(md, bib, "prince2022", "Prince JS") and not _cites(md, bib, "rokem2020", "Rokem A")
    md, bib = methods([_with(lss_meta, trial_estimates="lsa", trial_ridge=True)])
    assert "one regressor per trial (least squares all, LSA" in md and "fractional ridge" in md
    assert "noise regressors" not in md and _cites(md, bib, "rokem2020", "Rokem A")


@pytest.mark.parametrize("hrf", HRF_CHOICES)
def test_each_hrf_choice_has_its_sentence(lss_meta, hrf):
    md, bib = methods([_with(lss_meta, hrf=hrf)])
    assert HRF_PHRASES[hrf] in md
    others = [HRF_PHRASES[h] for h in HRF_CHOICES if h != hrf and HRF_PHRASES[h] not in HRF_PHRASES[hrf]]
    assert not any(o in md for o in others)
    assert _cites(md, bib, "prince2022", "Prince JS") == (hrf == "library")
    assert ("label-free" in md) == (hrf == "library")  # the library's choice is tuned: say on what


def test_trial_repeats_without_tuning_is_the_reliability(lss_meta):
    md, _ = methods([_with(lss_meta, trial_repeats="stimulus_id")])
    assert "split-half reliability" in md and "Cross-validation" not in md


def test_connectivity_sentence_and_fisher_z(lss_meta):
    md, bib = methods([_with(lss_meta, connectivity=["correlation", "partial-correlation"])])
    assert "Connectivity matrices (Pearson correlation and partial correlation)" in md
    assert "Ledoit-Wolf shrunk covariance (Ledoit and Wolf 2004)" in md and "Fisher" not in md
    assert _cites(md, bib, "ledoit2004", "Ledoit O")
    md, _ = methods([_with(lss_meta, connectivity=["correlation"], fisher_z=True)])
    assert "Fisher z-transformed" in md
    md, _ = methods([_with(lss_meta, connectivity=["covariance"], fisher_z=True)])
    assert "Connectivity matrices (covariance)" in md and "Fisher" not in md  # z applies to correlations only


def test_the_demo_connectivity_run_is_described_in_citation_and_report(demo_outputs):
    out = demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp-connectivity"
    md = (out / "logs" / "CITATION.md").read_text()
    assert "Connectivity matrices (Pearson correlation and partial correlation)" in md
    assert "@article{ledoit2004," in (out / "logs" / "CITATION.bib").read_text()
    assert "Ledoit and Wolf 2004" in (out / "sub-01.html").read_text()
    voxels = demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp"
    assert "Ledoit" not in (voxels / "logs" / "CITATION.md").read_text()
