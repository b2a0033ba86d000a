"""``group_denoising.json`` describes the columns of ``group_denoising.tsv`` in the table's order (the outputs page
lists them from it)."""

from bidsapp.outputs.benchmark_descriptions import group_denoising
from bidsapp.workflows.denoising_benchmark import SUMMARY_COLUMNS


def test_the_summary_columns_are_described_in_their_order():
    described = [c for c in group_denoising({}) if c in SUMMARY_COLUMNS]
    assert described == [c for c in SUMMARY_COLUMNS if c in described]
    assert set(SUMMARY_COLUMNS) <= set(group_denoising({}))
