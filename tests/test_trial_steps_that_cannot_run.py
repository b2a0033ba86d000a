"""Inputs that do not allow a step of the joined trial model say so: one line each naming the file (recorded in the
sidecar), or a refusal (exit 2) when the step cannot run at all."""

from __future__ import annotations

import numpy as np
import pytest

from bidsapp.cli.parser import parse_args
from bidsapp.core import events as ev
from bidsapp.errors import UsageError
from bidsapp.interfaces.trial_model import design_warnings


def _events(onsets, durations) -> ev.Events:
    n = len(onsets)
    return ev.Events(path="x_events.tsv", onset=np.asarray(onsets, float), duration=np.asarray(durations, float),
                     trial_type=["a"] * n, extra={})


def test_short_and_close_trials_are_one_line_each_naming_the_events_file():
    inputs = [{"events_file": "sub-01_run-1_events.tsv", "t_r": 2.0}, {"events_file": "sub-01_run-2_events.tsv",
                                                                        "t_r": 2.0}]
    events = [_events([10, 30, 50], [0.5, 0.5, 3.0]), _events([10, 11, 40], [3.0, 3.0, 3.0])]
    lines = design_warnings(inputs, events, ridge=True)
    assert len(lines) == 2
    assert lines[0].startswith("sub-01_run-1_events.tsv: 2 of 3 trial(s) last less than a TR (2 s")
    assert lines[1].startswith("sub-01_run-2_events.tsv: 1 pair(s) of trials start less than a TR (2 s) apart")
    # without ridge the model is LSS-1 (one model per trial): close onsets are no warning
    assert design_warnings(inputs, events, ridge=False) == lines[:1]


@pytest.mark.parametrize("extra", [["--trial-estimates", "optimized", "--hrf", "fir"],
                                   ["--trial-estimates", "optimized", "--hrf", "spm+derivative"],
                                   ["--trial-denoise", "pca", "--hrf", "glover"]])
def test_joined_model_refuses_an_hrf_it_cannot_fit(demo, tmp_path, extra):
    with pytest.raises(UsageError, match="the joined trial model has one regressor per trial") as exc:
        parse_args([str(demo[0]), str(tmp_path / "o"), "participant", *extra])
    assert exc.value.code == 2


def test_library_with_a_joined_step_alone_is_accepted(demo, tmp_path):
    s = parse_args([str(demo[0]), str(tmp_path / "o"), "participant", "--trial-denoise", "pca", "--hrf", "library"])
    from bidsapp.core.trial_fit import model_steps

    assert model_steps(s.trial_estimates, s.trial_denoise, s.trial_ridge, s.hrf)["hrf"] == "library"
