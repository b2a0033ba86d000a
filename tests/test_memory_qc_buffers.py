"""The memory model counts the QC's buffers (standardized DVARS' column chunks, the temporal moments) and the
carpet's columns: on a voxel-sized run their measured peak (``VmHWM`` of a fresh process) stays under the
model's term, and the cleaning node, which computes both, includes it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bidsapp.execution.memory import BASE_GB, GB, MARGIN, RunSize, carpet_buffer_bytes, node_memory_gb, qc_buffer_bytes

MEASURE = """
import json, sys
import numpy as np
from bidsapp.core import qc
from bidsapp.core.carpet import carpet_columns, kept_rows, zscored_columns

t, v, what = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
x = np.empty((t, v), dtype=np.float32)  # filled in small blocks: no large temporary before the baseline
for s in range(0, v, 1000):
    x[:, s:s + 1000] = rng.normal(100, 5, (t, min(1000, v - s)))
nss = np.zeros(t, bool)
nss[:2] = True
kept = np.setdiff1d(np.arange(2, t), np.arange(40, t, 37))  # some censored volumes
fd = rng.uniform(0, 0.4, t)
cleaned = x[kept]  # a copy, as the cleaned array
def peak_kb():  # this process's own peak (VmHWM: reset by exec; ru_maxrss keeps the forking parent's peak)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
before_kb = peak_kb()
if what == "qc":  # what the cleaning node computes around cleaning
    b = qc.qc_before(x, fd=fd, non_steady_state=nss, kept=kept)
    qc.qc_after(b, cleaned, kept=kept, fd=fd, cleaned_std=np.ones(v), dof=kept.size - 5, n_volumes=t)
else:  # the carpet the cleaning node draws: its columns before and after cleaning
    cols = carpet_columns(v)
    drawn = (zscored_columns(x, cols), kept_rows(zscored_columns(cleaned, cols), kept, t))
print(json.dumps({"grew": (peak_kb() - before_kb) * 1024}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc/self/status (VmHWM)")
@pytest.mark.parametrize("what", ["qc", "carpet"])
@pytest.mark.parametrize("t, v", [(300, 100_000), (120, 250_000)])
def test_qc_buffers_stay_under_their_term(t, v, what):
    done = subprocess.run([sys.executable, "-c", MEASURE, str(t), str(v), what], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    grew = json.loads(done.stdout.splitlines()[-1])["grew"]
    term = qc_buffer_bytes(t, v) if what == "qc" else carpet_buffer_bytes(t, v)
    print(f"{what} {t}x{v}: grew {grew / 2**20:.0f} MB, model {term / 2**20:.0f} MB")
    assert grew > term / 4  # the buffers are real: the term is not about nothing
    assert grew <= term


def test_cleaning_estimate_includes_the_qc_and_carpet_buffers():
    t, v, g = 300, 250_000, 1_082_035
    est = node_memory_gb(RunSize(n_volumes=t, n_features=v, grid_voxels=g))
    x = t * v * 4
    carpet = carpet_buffer_bytes(t, v)
    assert est["cleaning"] >= BASE_GB + MARGIN * (x + 8 * t * t * 8 + qc_buffer_bytes(t, v) + carpet) / GB - 1e-3
    assert est["report"] < BASE_GB + MARGIN * x / GB  # the report node reads the cleaning node's carpet only
    assert 30 * 2**20 < qc_buffer_bytes(t, v) < 100 * 2**20
