"""The group report at 1400 px: the per-strategy titles of the QC-FC histograms and distance-dependence plots
overlapped their neighbours, the scatter points were 3 pt^2 (invisible), and the runs table (30 columns) ran
past the page. Titles are measured with matplotlib's renderer; the table must sit in a scrolling block."""

from __future__ import annotations

import numpy as np
import pytest

from bidsapp.reports import group_figures as F

#: the report's panel keys: atlas, space and desc of each strategy
STRATEGIES = tuple(f"atlas-demo_space-MNI152NLin2009cAsym_desc-{d}" for d in ("none", "scrubbing", "simple",
                                                                              "compcor"))


def _title_boxes(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [ax.title.get_window_extent(renderer) for ax in fig.axes]


@pytest.mark.parametrize("n", [2, 3, 4])
def test_neighbouring_titles_do_not_overlap(n):
    rng = np.random.default_rng(n)
    qcfc = {s: rng.normal(0.1, 0.15, 300) for s in STRATEGIES[:n]}
    dist = rng.uniform(5, 120, 300)
    for fig in (F.qcfc_histogram_figure(qcfc), F.distance_dependence_figure({k: (dist, v) for k, v in qcfc.items()})):
        boxes = _title_boxes(fig)
        assert len(boxes) == n
        for left, right in zip(boxes, boxes[1:]):
            assert left.x1 < right.x0, f"titles overlap: {left.x1:.0f} px >= {right.x0:.0f} px"
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_long_keys_are_broken_between_entities():
    assert F.wrap_label(STRATEGIES[1]) == "atlas-demo_space-MNI152NLin2009cAsym_\ndesc-scrubbing"
    assert F.wrap_label("simple") == "simple"


def test_distance_points_are_visible():
    rng = np.random.default_rng(0)
    fig = F.distance_dependence_figure({"simple": (rng.uniform(5, 100, 50), rng.normal(0, 0.2, 50))})
    sizes = fig.axes[0].collections[0].get_sizes()
    assert sizes.min() >= 10


def test_the_runs_table_scrolls_inside_the_page(tmp_path):
    from bidsapp.reports.group import qc_section
    from bidsapp.reports.page import CSS

    columns = [f"column_with_a_long_name_{k}" for k in range(30)]
    (tmp_path / "group_runs.tsv").write_text("\t".join(columns) + "\n" + "\t".join("0.123" for _ in columns) + "\n")
    section = qc_section(tmp_path / "group_runs.tsv")
    assert "<div class='wide'><table>" in section and section.rstrip().endswith("</table></div>")
    assert ".wide{overflow-x:auto" in CSS


def test_the_benchmark_table_scrolls_inside_the_page(tmp_path):
    from bidsapp.reports.denoising import benchmark_section
    from bidsapp.reports.page import CSS

    header = ["desc", "denoise", "atlas", "space", "n_participants", "note"]
    (tmp_path / "group_denoising.tsv").write_text("\t".join(header) + "\nsimple\tsimple\tdemo\tMNI\t8\t"
                                                  + "region left_back: a column of NaN " * 5 + "\n")
    section = benchmark_section(tmp_path)
    assert "<div class='wide'><table>" in section and "</table></div>" in section
    assert "<td>region left_back" in section and ".wide{overflow-x:auto" in CSS
