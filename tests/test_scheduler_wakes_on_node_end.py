"""The MultiProc scheduler starts the next node as soon as one ends, instead of sleeping nipype's poll interval
after every node (a run is a chain of nodes: each sleep added up to the interval to the whole process)."""

from __future__ import annotations

import time

import pytest
from nipype.interfaces.utility import Function
from nipype.pipeline import engine as pe

from bidsapp.execution.plugins import OrphanSafeMultiProc

POLL = 2.0  # seconds: long, so that sleeping it after each node could not go unnoticed on a loaded machine


def _add_one(x):
    return x + 1


def _chain(base_dir, n: int) -> pe.Workflow:
    wf = pe.Workflow(name="chain", base_dir=str(base_dir))
    nodes = [pe.Node(Function(input_names=["x"], output_names=["y"], function=_add_one), name=f"n{k}")
             for k in range(n)]
    nodes[0].inputs.x = 0
    wf.connect([(a, b, [("y", "x")]) for a, b in zip(nodes, nodes[1:])])
    wf.config["execution"].update({"poll_sleep_duration": POLL, "remove_unnecessary_outputs": False})
    return wf


@pytest.mark.parametrize("n_procs", [1, 2])
def test_a_chain_of_nodes_does_not_wait_the_poll_interval_per_node(tmp_path, n_procs):
    n = 6
    wf = _chain(tmp_path, n)
    t0 = time.monotonic()
    graph = wf.run(plugin=OrphanSafeMultiProc(plugin_args={"n_procs": n_procs, "memory_gb": 1}))
    took = time.monotonic() - t0
    (last,) = [node for node in graph.nodes() if node.name == f"n{n - 1}"]
    assert last.result.outputs.y == n  # every node ran, in order
    assert took < n * POLL / 2, f"{n} nodes took {took:.1f} s with a poll interval of {POLL} s"


def test_max_jobs_keeps_the_poll_interval(tmp_path):
    """With ``max_jobs`` the loop may skip the wait: nipype's sleep is kept (no busy loop), and the chain runs."""
    wf = _chain(tmp_path, 2)
    wf.config["execution"]["poll_sleep_duration"] = 0.05
    plugin = OrphanSafeMultiProc(plugin_args={"n_procs": 1, "memory_gb": 1, "max_jobs": 1})
    graph = wf.run(plugin=plugin)
    assert plugin._poll == 0.0
    assert [node for node in graph.nodes() if node.name == "n1"][0].result.outputs.y == 2
