"""The report's figures cost what their pixels need: each figure is drawn once, and pyplot is never imported."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from bidsapp.reports import figures as F


def test_a_figure_is_drawn_once(monkeypatch):
    from matplotlib.figure import Figure

    draws = []
    original = Figure.draw

    def counted(self, renderer):
        draws.append(1)
        return original(self, renderer)

    monkeypatch.setattr(Figure, "draw", counted)
    rng = np.random.default_rng(2)
    F.carpet_plot(rng.normal(size=(50, 40)), rng.normal(size=(50, 40)), t_r=2.0, fd=np.zeros(50),
                  dvars_before=np.ones(50), dvars_after=np.ones(50), censored=np.zeros(50, bool))
    assert len(draws) == 1


def test_figures_do_not_import_pyplot():
    code = ("import sys; import numpy as np; from bidsapp.reports import figures as F; "
            "F.coverage_bars(['CIFTI_STRUCTURE_CORTEX_LEFT'], [10]); "
            "F.overlay_planes(np.ones((5, 5, 5)), np.ones((5, 5, 5)), np.eye(4)); "
            "sys.exit('matplotlib.pyplot' in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
