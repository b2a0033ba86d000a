"""Column descriptions (JSON sidecars of every TSV) and sidecar paths as URIs."""

from __future__ import annotations

import json
import shutil

import pytest

from bidsapp.core.tsv import read_tsv
from bidsapp.outputs import descriptions, provenance


def test_every_column_of_every_table_is_described(demo_outputs, tmp_path):
    out = demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp"
    tables = sorted(out.rglob("*.tsv"))
    kinds = {descriptions.kind_of(t) for t in tables}
    assert kinds == {"samples", "features", "trials", "betas", "hrf"}
    for tsv in tables:
        sidecar = tsv.with_suffix(".json")
        desc = json.loads(sidecar.read_text())
        header, _ = read_tsv(tsv)
        assert list(desc) == header, tsv.name
        assert all(d["Description"] for d in desc.values())
        meta = json.loads(next(tsv.parent.glob(tsv.name.rsplit("_", 1)[0] + "_timeseries.json")).read_text())
        listed = [f["Path"] if isinstance(f, dict) else f for f in meta["OutputFiles"]]
        assert sidecar.name in listed  # listed with the run's outputs
        ignore = (out / ".bidsignore").read_text().splitlines()
        assert f"*_{descriptions.kind_of(tsv)}.json" in ignore
    samples = json.loads(next(out.rglob("*_samples.json")).read_text())
    assert samples["onset"]["Units"] == "s" and samples["framewise_displacement"]["Units"] == "mm"
    assert set(samples["kept"]["Levels"]) == {"True", "False"}
    features = json.loads(next(out.rglob("*_features.json")).read_text())
    assert [features[c]["Units"] for c in "xyz"] == ["mm"] * 3
    trials = json.loads(next(out.rglob("*_trials.json")).read_text())
    assert trials["onset"]["Units"] == "s" and "events.tsv" in trials["response_time"]["Description"]
    # group level: group_runs.tsv and its description
    from bidsapp.cli.run import main

    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    assert main([str(demo_outputs / "bidsapp-demo-output" / "bids"), str(copy), "group"]) == 0
    header, _ = read_tsv(copy / "group_runs.tsv")
    group = json.loads((copy / "group_runs.json").read_text())
    assert list(group) == header and group["fd_mean"]["Units"] == "mm"


def test_describe_errors_and_kinds():
    with pytest.raises(ValueError, match=r"column 'volumes' of a samples table has no description"):
        descriptions.describe("samples", ["volume", "volumes"])
    with pytest.raises(ValueError, match="unknown table kind 'bold'"):
        descriptions.describe("bold", ["a"])
    assert descriptions.describe("betas", ["index", "rt"])["rt"]["Description"].startswith("Column of the run's events")
    atlas = descriptions.describe("features", ["column", "label", "name", "x"], {"atlas_name": "halves"})
    assert "region" in atlas["x"]["Description"]
    assert descriptions.kind_of("a/sub-01_desc-x_trials.tsv") == "trials" and descriptions.kind_of("x_bold.tsv") is None
    with pytest.raises(ValueError, match="not a bidsapp table"):
        descriptions.write_sidecar("sub-01_events.tsv")
    assert "+ 5 s" in descriptions.describe("samples", ["trial"], {"hrf_lag": 5})["trial"]["Description"]


def test_write_sidecar_of_a_staged_table(tmp_path):
    src = tmp_path / "samples.tsv"  # a node's output, named without entities
    src.write_text("volume\tonset\tkept\n0\t1.0\tTrue\n")
    dst = descriptions.write_sidecar(src, kind="samples", dst=tmp_path / "staged.json")
    assert list(json.loads(dst.read_text())) == ["volume", "onset", "kept"]


def test_with_uris():
    sources = [{"Role": "events", "URI": "bids:raw:sub-01/func/e.tsv", "SHA256": "0" * 64},
               {"Role": "atlas", "URI": "/data/atlas.nii.gz", "SHA256": "1" * 64}]
    side = {"Sources": sources, "Trials": {"EventsFile": "/abs/e.tsv"},
            "Parameters": {"atlas": "/data/atlas.nii.gz", "atlas_labels": None}}
    out = provenance.with_uris(side, sources)
    assert out["Trials"]["EventsFile"] == "bids:raw:sub-01/func/e.tsv"
    assert out["Parameters"]["atlas"] == "file:///data/atlas.nii.gz" == out["Sources"][1]["URI"]
    assert side["Trials"]["EventsFile"] == "/abs/e.tsv"  # input not mutated
    tpl = provenance.with_uris({"TemplateFile": "/tf/tpl-X/tpl-X_res-02_desc-brain_mask.nii.gz"}, [])
    assert tpl["TemplateFile"] == "file:///tf/tpl-X/tpl-X_res-02_desc-brain_mask.nii.gz"
    assert provenance.with_uris({"Trials": {"EventsFile": None}}, []) == {"Trials": {"EventsFile": None}}
    with pytest.raises(ValueError, match=r"Trials.EventsFile = '/abs/e.tsv' has no 'events' entry in Sources"):
        provenance.with_uris({"Trials": {"EventsFile": "/abs/e.tsv"}}, sources[1:])
