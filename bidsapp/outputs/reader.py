"""Read a processed run back from its sidecar and samples table (group level, report)."""


from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bidsapp.core.io import read_tsv, to_float

#: entities of a source BOLD that identify the run and are carried to every output name (pybids names)


@dataclass
class RunOutputs:
    """A processed run as read back from its sidecar and samples table (group level, report)."""

    stem: str
    meta: dict
    n_volumes: int
    framewise_displacement: np.ndarray
    kept: np.ndarray


def read_run_outputs(sidecar: Path) -> RunOutputs:
    """Read ``<stem>_timeseries.json`` and ``<stem>_samples.tsv``."""
    meta = json.loads(Path(sidecar).read_text())
    stem = Path(sidecar).name[: -len("_timeseries.json")]
    samples = Path(sidecar).with_name(stem + "_samples.tsv")
    header, rows = read_tsv(samples)
    fd = to_float([r[header.index("framewise_displacement")] for r in rows], path=samples,
                  column="framewise_displacement")
    kept = np.array([r[header.index("kept")] == "True" for r in rows])
    return RunOutputs(stem=stem, meta=meta, n_volumes=len(rows), framewise_displacement=fd, kept=kept)
