"""Trial-based segmentation node (events.tsv -> labelled rows, per-trial segments)."""

from __future__ import annotations

import json
from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

from bidsapp.core.io import write_text


class _SegmentInput(BaseInterfaceInputSpec):
    cleaned = File(exists=True, mandatory=True)
    samples = File(exists=True, mandatory=True)
    events_file = traits.Either(None, File(exists=True), default=None, usedefault=True)
    t_r = traits.Float(mandatory=True)


class _SegmentOutput(TraitedSpec):
    samples = File(exists=True)
    trial_files = traits.Dict(desc="suffix -> file written by segmentation")
    info = File(exists=True)


class SegmentTrials(SimpleInterface):
    """Pass-through until trial segmentation lands: keeps the samples table as is."""

    input_spec = _SegmentInput
    output_spec = _SegmentOutput

    def _run_interface(self, runtime):
        info = Path(runtime.cwd) / "segment.json"
        write_text(info, json.dumps({"EventsFile": self.inputs.events_file}))
        self._results.update(samples=self.inputs.samples, trial_files={}, info=str(info))
        return runtime
