"""Provenance node: the run's start time and the checksums of its inputs, computed inside the run."""

from __future__ import annotations

import datetime as dt

from nipype.interfaces.base import BaseInterfaceInputSpec, SimpleInterface, TraitedSpec, traits

from bidsapp.outputs import provenance
from bidsapp.outputs.checksums import ChecksumCache


class _HashInputsInput(BaseInterfaceInputSpec):
    files = traits.Dict(mandatory=True, desc="role -> input path (or None)")
    roots = traits.Dict(mandatory=True, desc="dataset name -> root folder (for BIDS URIs)")
    cache_dir = traits.Either(None, traits.Str, default=None, usedefault=True, desc="checksum cache folder")


class _HashInputsOutput(TraitedSpec):
    sources = traits.List(traits.Dict, desc="Sources entries (Role, URI, SHA256)")
    started = traits.Str(desc="ISO time when the run started")


class HashInputs(SimpleInterface):
    """Record when the run starts and the SHA-256 of each input (cached by file identity)."""

    input_spec = _HashInputsInput
    output_spec = _HashInputsOutput
    always_run = True  # the files may change under the same paths; nipype's cache must not hide it

    def _run_interface(self, runtime):
        started = dt.datetime.now(dt.timezone.utc).isoformat()
        sources = provenance.sources(self.inputs.files, self.inputs.roots, ChecksumCache(self.inputs.cache_dir))
        self._results.update(sources=sources, started=started)
        return runtime
