"""The group report draws QC-FC histograms and distance plots only for strategies whose QC-FC was computed
(with two participants it is not: an empty histogram looked like a result)."""

from __future__ import annotations

import numpy as np

from bidsapp.reports.group import benchmark_figures


def _edges(rng, computed: bool, n: int = 15) -> dict[str, np.ndarray]:
    qcfc = rng.uniform(-0.4, 0.4, n) if computed else np.full(n, np.nan)
    return {"qcfc": qcfc, "qcfc_p": rng.uniform(0, 1, n), "distance": rng.uniform(10, 120, n)}


def test_no_figure_when_no_strategy_has_qcfc():
    rng = np.random.default_rng(0)
    html = benchmark_figures({"atlas-demo_space-MNI_desc-simple": _edges(rng, False),
                              "atlas-demo_space-MNI_desc-scrubbing": _edges(rng, False)})
    assert "<img" not in html and "not computed" in html and "desc-scrubbing" in html


def test_only_the_computed_strategies_are_drawn():
    rng = np.random.default_rng(1)
    html = benchmark_figures({"atlas-a_space-MNI_desc-simple": _edges(rng, True),
                              "atlas-b_space-MNI_desc-simple": _edges(rng, False)})
    assert html.count("<img") == 2  # the histogram and the distance plot
    assert "No QC-FC to draw for atlas-b_space-MNI_desc-simple" in html
