"""Provenance node: the run's start time and the checksums of its inputs, computed inside the run.

It runs after the masking node, which records the BOLD's checksum in the cache from the bytes it streams:
the BOLD is read once, and every other input is hashed here (or found in the cache when unchanged).
"""

from __future__ import annotations

import datetime as dt

from nipype.interfaces.base import BaseInterfaceInputSpec, SimpleInterface, TraitedSpec, traits

from bidsapp.outputs import provenance
from bidsapp.outputs.checksums import ChecksumCache, check_unchanged


class _HashInputsInput(BaseInterfaceInputSpec):
    files = traits.Dict(mandatory=True, desc="role -> input path (or None)")
    roots = traits.Dict(mandatory=True, desc="dataset name -> root folder (for BIDS URIs)")
    cache_dir = traits.Either(None, traits.Str, default=None, usedefault=True, desc="checksum cache folder")
    hashed_while_reading = traits.List(traits.Str, value=[], usedefault=True,
                                       desc="inputs the masking node hashed while reading them and recorded in "
                                            "the cache (the connection that runs this node after it)")
    mask_started = traits.Either(None, traits.Str, default=None, usedefault=True,
                                 desc="ISO time when the run's mask node (its first) started")
    masking_started = traits.Either(None, traits.Str, default=None, usedefault=True,
                                    desc="ISO time when the run's masking node started")
    planned = traits.Dict(value={}, usedefault=True,
                          desc="path -> identity (size, mtime, ctime, inode, device) of every input when the run "
                               "was planned; an input that differs is refused (it changed during the run)")
    invoked = traits.Either(None, traits.Str, default=None, usedefault=True,
                            desc="ISO time when this invocation planned the run: earlier node starts are "
                                 "results nipype reused from a --work-dir, not this run's start")


class _HashInputsOutput(TraitedSpec):
    sources = traits.List(traits.Dict, desc="Sources entries (Role, URI, SHA256)")
    started = traits.Str(desc="ISO time when the run started")


class HashInputs(SimpleInterface):
    """Record when the run started and the SHA-256 of each input (cached by file identity)."""

    input_spec = _HashInputsInput
    output_spec = _HashInputsOutput
    always_run = True  # the files may change under the same paths; nipype's cache must not hide it

    def _run_interface(self, runtime):
        i, now = self.inputs, dt.datetime.now(dt.timezone.utc)
        check_unchanged(i.planned, "before its checksum")  # a changed file is not hashed (nor cached) at all
        sources = provenance.sources(i.files, i.roots, ChecksumCache(i.cache_dir))
        check_unchanged(i.planned, "while its checksum was computed")  # the sink checks again before the sidecar
        started = run_started([i.mask_started, i.masking_started], i.invoked, now)
        self._results.update(sources=sources, started=started)
        return runtime


def run_started(node_starts: list, invoked: str | None, now: dt.datetime) -> str:
    """When the run started: the earliest start of its earlier nodes that ran in this invocation (not before
    ``invoked``), else ``now`` (ISO 8601, UTC)."""
    floor = dt.datetime.fromisoformat(invoked) if invoked else None
    times = [dt.datetime.fromisoformat(t) for t in node_starts if t]
    ran = [t for t in times if floor is None or t >= floor]
    return min([*ran, now]).isoformat()
