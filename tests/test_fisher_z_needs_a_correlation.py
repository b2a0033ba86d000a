"""``--fisher-z`` without a correlation in ``--connectivity`` used to be accepted (exit 0): no matrix was
transformed, yet the option changed the configuration hash and the settings record said ``fisher_z: true``.
It is now refused before anything is written (exit 2, one line naming the fix)."""

from __future__ import annotations

import pytest

from bidsapp.cli.run import main
from bidsapp.demo import make_dataset


@pytest.mark.parametrize("connectivity", [[], ["--connectivity", "covariance"]])
def test_fisher_z_without_a_correlation_is_a_usage_error(tmp_path, capsys, connectivity):
    make_dataset(tmp_path / "bids", n_volumes=30)
    out = tmp_path / "out"
    code = main([str(tmp_path / "bids"), str(out), "participant", "--participant-label", "01", "--fisher-z",
                 *connectivity])
    err = capsys.readouterr().err
    assert code == 2
    assert "--fisher-z" in err and "--connectivity correlation" in err
    assert "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
