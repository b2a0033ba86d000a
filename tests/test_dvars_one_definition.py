"""Standardized DVARS has one definition: the carpet plot's traces and the sidecar's QC metrics come from the
same computation (``bidsapp.core.qc.standardized_dvars``), which equals a direct numpy transcription of
Nichols' standardized DVARS as fMRIPrep / nipype's ``compute_dvars`` computes it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bidsapp.core import qc
from bidsapp.core.carpet import carpet_data


def _direct_std_dvars(x: np.ndarray) -> np.ndarray:
    """Nichols' standardized DVARS of consecutive rows, written from its definition (no chunks, no shortcuts):
    RMS over columns of the temporal difference / mean over columns of sqrt(2 (1 - AR1)) * IQR / 1.349, with
    FSL's "lower" percentiles, the lag-1 Yule-Walker autocorrelation, and zero-IQR columns left out."""
    x = np.asarray(x, dtype=np.float64)
    q75, q25 = np.percentile(x, [75, 25], axis=0, method="lower")
    sd = (q75 - q25) / 1.349
    x = x[:, sd > 0]
    sd = sd[sd > 0]
    c = x - x.mean(axis=0)
    ar1 = np.sum(c[1:] * c[:-1], axis=0) / np.sum(c * c, axis=0)
    expected = np.mean(np.sqrt(2 * (1 - ar1)) * sd)
    return np.r_[np.nan, np.sqrt(np.mean(np.diff(x, axis=0) ** 2, axis=1)) / expected]


@pytest.mark.parametrize("seed", range(6))
def test_carpet_and_qc_dvars_are_one_computation_equal_to_numpy(seed):
    """Random runs with non-steady-state volumes and censoring gaps: the carpet's DVARS before cleaning is the
    direct computation over the steady volumes, after cleaning over the kept ones (no value across a gap), and
    their means are the QC metrics."""
    rng = np.random.default_rng(seed)
    n, p = int(rng.integers(40, 120)), int(rng.integers(20, 400))
    before = (rng.uniform(100, 1000, p) + rng.normal(0, 1, (n, p)).cumsum(axis=0)
              * rng.uniform(0.5, 5, p)).astype(np.float32)
    before[: int(rng.integers(0, 4))] += 300  # the non-steady-state volumes are bright, as in real runs
    nss = np.zeros(n, bool)
    nss[: int(rng.integers(1, 4))] = True
    censored = rng.choice(np.flatnonzero(~nss), size=int(rng.integers(0, n // 5)), replace=False)
    kept = np.setdiff1d(np.flatnonzero(~nss), censored)
    after = rng.normal(0, 1, (kept.size, p)).astype(np.float32)
    carpet = carpet_data(before, after, kept, non_steady_state=nss, max_columns=50,
                         chunk_bytes=8 * n * int(rng.integers(3, 60)))

    steady = np.flatnonzero(~nss)
    expected_before = np.full(n, np.nan)
    expected_before[steady] = _direct_std_dvars(before[steady])
    np.testing.assert_allclose(carpet.dvars_before, expected_before, rtol=1e-10)
    expected_after = np.full(n, np.nan)
    direct = _direct_std_dvars(after)
    gap = np.r_[True, np.diff(kept) != 1]
    direct[gap] = np.nan
    expected_after[kept] = direct
    np.testing.assert_allclose(carpet.dvars_after, expected_after, rtol=1e-10)

    cleaned_std = np.ones(p)
    metrics = qc.run_qc(before, after, kept=kept, fd=rng.uniform(0, 0.5, n), non_steady_state=nss,
                        cleaned_std=cleaned_std, dof=kept.size - 3)
    assert metrics["StandardizedDVARSMeanBefore"] == pytest.approx(np.nanmean(carpet.dvars_before), rel=1e-12)
    assert metrics["StandardizedDVARSMeanAfter"] == pytest.approx(np.nanmean(carpet.dvars_after), rel=1e-12)


def test_the_report_traces_and_the_sidecar_agree_on_a_real_run(demo_outputs):
    """On the demo's voxel run (two non-steady-state volumes, censoring): the DVARS traces of the report data
    have the sidecar's mean DVARS before and after cleaning (they disagreed by ~3% when the carpet counted the
    non-steady-state volumes)."""
    out = demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp"
    sidecar = sorted(out.glob("sub-01/func/*run-1*_timeseries.json"))[0]
    meta = json.loads(sidecar.read_text())
    assert meta["NonSteadyState"]["Volumes"]  # the case that disagreed
    data = np.load(sidecar.with_name(sidecar.name.replace("_timeseries.json", "_reportdata.npz")))
    for when in ("Before", "After"):
        assert meta["QC"][f"StandardizedDVARSMean{when}"]["Value"] == pytest.approx(
            np.nanmean(data[f"dvars_{when.lower()}"]), rel=1e-6)
    assert np.isnan(data["dvars_before"][meta["NonSteadyState"]["Volumes"]]).all()
