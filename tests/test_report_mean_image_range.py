"""The report keeps the run's mean image as float32: float16 overflowed to inf above 65504 (a BOLD scaled to
1e5, e.g. raw scanner units times a gain, drew a white blob) and rounded it to 3 significant digits."""

from __future__ import annotations

import numpy as np

from bidsapp.core.files import save_npy
from bidsapp.interfaces.report import ReportData


def test_a_large_mean_image_is_kept_exactly(tmp_path, small_bold):
    bold = small_bold[0]
    mean = np.random.default_rng(0).uniform(1e3, 2e5, (4, 5, 6)).astype(np.float32)
    save_npy(mean, tmp_path / "mean.npy")
    np.savez(tmp_path / "carpet.npz", dvars_before=np.zeros(3))
    (tmp_path / "run").mkdir()
    out = ReportData(bold_file=str(bold), carpet=str(tmp_path / "carpet.npz"), on_grayordinates=False,
                     mean_image=str(tmp_path / "mean.npy")).run(cwd=str(tmp_path / "run"))
    stored = np.load(out.outputs.report_data)["mean"]
    assert np.isfinite(stored).all()
    np.testing.assert_array_equal(stored, mean)
