"""Python's cyclic garbage collector is paused while a participant invocation imports its modules and plans its
runs, the long-lived objects are frozen when the workflow starts and the collector runs during it, and an
in-process caller gets the collector back as it was (enabled or not, nothing left frozen)."""

from __future__ import annotations

import gc

import pytest

from bidsapp import demo
from bidsapp.cli import run


@pytest.mark.parametrize("enabled", [True, False])
def test_collector_state_during_and_after_a_run(tmp_path, monkeypatch, enabled):
    bids = tmp_path / "bids"
    demo.make_dataset(bids, n_volumes=40)
    seen = {}
    real = run.participant

    def participant(s):
        seen["planning"] = gc.isenabled()
        return real(s)

    import nipype.pipeline.engine as pe

    real_run = pe.Workflow.run

    def wf_run(self, *args, **kwargs):
        seen["workflow"], seen["frozen"] = gc.isenabled(), gc.get_freeze_count()
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(run, "participant", participant)
    monkeypatch.setattr(pe.Workflow, "run", wf_run)
    (gc.enable if enabled else gc.disable)()
    try:
        code = run.main([str(bids), str(tmp_path / "out"), "participant", "--participant-label", "01", "--run", "1",
                         "--plugin", "Linear", "--denoise", "none"])
        after, frozen_after = gc.isenabled(), gc.get_freeze_count()
    finally:
        gc.enable()
    assert code == 0
    assert seen["planning"] is False
    assert seen["workflow"] is True and seen["frozen"] > 10_000  # the modules, settings and workflow
    assert after is enabled and frozen_after == 0
