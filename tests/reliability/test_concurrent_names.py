"""Two invocations started at once with other settings under one output name: one meaning per name.

The check before the run cannot see an invocation that has not written yet; the claim taken by the
derivatives node (``logs/names/<variant>.json``, under a lock held while the run is written) can.
"""

from __future__ import annotations

import json

import pytest

from bidsapp.outputs.transaction import configuration_of

from .helpers import _cli, _popen, assert_sidecars_true


def _configurations(out) -> set[str]:
    return {json.dumps(configuration_of(json.loads(p.read_text())), sort_keys=True)
            for p in out.rglob("*_timeseries.json")}


@pytest.mark.parametrize("participants", [("01", "01"), ("01", "02")], ids=["same-run", "other-participant"])
def test_concurrent_invocations_with_other_settings_never_share_a_name(data, tmp_path, participants):
    bids, _ = data
    out = tmp_path / "o"
    settings = ([], ["--high-pass", "0.02"])
    procs = [_popen(bids, out, "participant", "--participant-label", sub, "--run", "1", "--nprocs", "1", *extra)
             for sub, extra in zip(participants, settings)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes[0] == 0 and codes[1] != 0, [err[-800:] for _, _, err in results]
    refused = next(err for code, _, err in results if code != 0)
    assert "were made with other settings" in refused and "--replace-outputs" in refused, refused[-800:]
    assert "space-MNI152NLin2009cAsym_desc-simple" in refused
    assert len(_configurations(out)) == 1  # every run of the name: one configuration
    assert assert_sidecars_true(out) == 1


def test_replace_outputs_takes_the_name_over_and_a_stale_record_does_not_block(data, tmp_path):
    bids, _ = data
    out = tmp_path / "o"
    first = _cli(bids, out, "participant", "--participant-label", "01", "--run", "1", "--nprocs", "1", timeout=300)
    assert first.returncode == 0, first.stderr
    record = json.loads(next((out / "logs" / "names").glob("*.json")).read_text())
    assert record["Variant"] == "space-MNI152NLin2009cAsym_desc-simple"
    again = _cli(bids, out, "participant", "--participant-label", "01", "--run", "1", "--nprocs", "1",
                 "--high-pass", "0.02", "--replace-outputs", timeout=300)
    assert again.returncode == 0, again.stderr
    assert len(_configurations(out)) == 1
    assert json.loads(next((out / "logs" / "names").glob("*.json")).read_text()) != record
    # outputs deleted by hand: the record names nothing that exists and does not block other settings
    for p in (out / "sub-01").rglob("*"):
        if p.is_file():
            p.unlink()
    third = _cli(bids, out, "participant", "--participant-label", "01", "--run", "1", "--nprocs", "1", timeout=300)
    assert third.returncode == 0, third.stderr
