"""The run's standardized DVARS is computed once per array: the cleaning node's QC computes the traces before
and after cleaning (two calls), draws the carpet's columns before it cleans the array in place, and hands
both to the report node, which computes no DVARS and reads neither array. What the report stores equals, to
the bit, the carpet computed from the arrays before and after cleaning (``carpet_data``)."""

from __future__ import annotations

import numpy as np
import pytest

from bidsapp.core import qc
from bidsapp.core.carpet import carpet_data, quantize
from bidsapp.core.files import save_npy
from bidsapp.interfaces.clean import CleanSignals
from bidsapp.interfaces.report import ReportData


@pytest.mark.parametrize("seed, dummy, order", [(0, 0, "C"), (1, 3, "C"), (2, 2, "F")])
def test_cleaning_hands_the_report_its_dvars_and_carpet(tmp_path, monkeypatch, seed, dummy, order):
    rng = np.random.default_rng(seed)
    n, p = int(rng.integers(60, 140)), int(rng.integers(2100, 2600))  # more columns than the carpet keeps
    x = (rng.uniform(100, 1000, p) + rng.normal(0, 1, (n, p)).cumsum(axis=0) * rng.uniform(0.5, 5, p))
    x = np.asarray(x, dtype=np.float32, order=order)
    x[:, 7] = 500.0  # a constant column
    save_npy(x, tmp_path / "timeseries.npy")
    calls = []
    real = qc._dvars_pass  # every DVARS (alone, or with the moments) is one such pass over an array
    monkeypatch.setattr(qc, "_dvars_pass", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    (tmp_path / "clean").mkdir()
    (tmp_path / "report").mkdir()
    clean = CleanSignals(timeseries=str(tmp_path / "timeseries.npy"), t_r=2.0, denoise="none", dummy_scans=dummy,
                         high_pass=0.01).run(cwd=str(tmp_path / "clean"))
    assert len(calls) == 2  # before and after cleaning, nothing else
    bold = tmp_path / "bold.dtseries.nii"
    bold.write_bytes(b"")  # the report only asks whether the run is on grayordinates (it is told here)
    report = ReportData(bold_file=str(bold), carpet=clean.outputs.carpet, on_grayordinates=True).run(
        cwd=str(tmp_path / "report"))
    assert len(calls) == 2  # the report node computed none
    stored = np.load(report.outputs.report_data)
    cleaned = np.load(clean.outputs.cleaned)
    kept = np.flatnonzero(np.arange(n) >= dummy)
    nss = np.arange(n) < dummy
    expected = carpet_data(x, cleaned, kept, non_steady_state=nss)
    np.testing.assert_array_equal(stored["columns"], expected.columns)
    np.testing.assert_array_equal(stored["before"], quantize(expected.before))
    np.testing.assert_array_equal(stored["after"], quantize(expected.after))
    np.testing.assert_array_equal(stored["dvars_before"], expected.dvars_before)
    np.testing.assert_array_equal(stored["dvars_after"], expected.dvars_after)
    assert np.isnan(stored["dvars_before"][: dummy + 1]).all() and np.isfinite(stored["dvars_before"][dummy + 1:]).all()


def test_a_nan_column_is_no_data_in_the_carpet():
    """A region --min-coverage turned into a NaN column is NaN (no data) in both carpet panels, not z = 0,
    which drew it as a flat mid-grey signal; constant columns stay 0."""
    rng = np.random.default_rng(3)
    n, p = 50, 9
    before = rng.normal(100, 5, (n, p)).astype(np.float32)
    before[:, 4] = np.nan
    before[:, 6] = 100.0
    after = before[2:].copy()
    after[:, 4] = np.nan
    carpet = carpet_data(before, after, np.arange(2, n), non_steady_state=np.arange(n) < 2)
    for panel in (carpet.before, carpet.after[2:]):
        assert np.isnan(panel[:, 4]).all() and (panel[:, 6] == 0).all()
        assert np.isfinite(np.delete(panel, 4, axis=1)).all()
    assert (quantize(carpet.before)[:, 4] == 255).all()
