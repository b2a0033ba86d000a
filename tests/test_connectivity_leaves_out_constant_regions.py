"""A region whose cleaned signal has no variance over the run (a constant region: its column is 0 after
standardization) is left out of the connectivity as a region left out by --min-coverage: n/a edges in every
measure, the other edges equal to nilearn's ConnectivityMeasure on the remaining columns, listed in the sidecar's
ExcludedNodes with its reason, one warning naming the run and the region; the denoising benchmark scores the same
values. A near-constant region that does vary is kept."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bidsapp.bids.naming import RunNaming
from bidsapp.core import connectivity as cn
from bidsapp.core import denoising_benchmark as db
from bidsapp.outputs.checksums import ChecksumCache
from bidsapp.outputs.connectomes import read_relmat, write_relmats
from bidsapp.outputs.transaction import RunWriter
from bidsapp.workflows.denoising_benchmark import read_benchmark_run

KINDS = {"correlation": "correlation", "partial-correlation": "partial correlation", "covariance": "covariance"}
ZERO, OFFSET, TINY, NEAR = 2, 4, 5, 6  # constant 0, constant 7.5, small amplitude, near-constant around 1000
NAMES = ["a", "b", "zero", "c", "offset", "tiny", "near", "d"]


def _cleaned(seed: int, n: int = 90) -> np.ndarray:
    """float32 cleaned series as a run stores them: correlated columns, two constant ones and two that vary
    very little (relative to their scale, or in absolute value)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)) @ rng.normal(size=(8, 8))
    x = (x - x.mean(axis=0)) / x.std(axis=0, ddof=1)
    x[:, ZERO] = 0.0  # what the cleaning's standardization makes of a constant region
    x[:, OFFSET] = 7.5  # a constant region without standardization
    x[:, TINY] *= 1e-6
    x[:, NEAR] = 1000.0 + 2e-3 * x[:, NEAR]  # about 30 float32 rounding steps of 1000: it varies
    return x.astype(np.float32)


def _scaled(m: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both matrices divided by each entry's scale (the geometric mean of the two diagonal values of ``ref``)."""
    d = np.sqrt(np.abs(np.diag(ref)))
    return m / np.outer(d, d), ref / np.outer(d, d)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("measure", list(KINDS))
def test_constant_regions_left_out_of_every_measure(seed, measure):
    from nilearn.connectome import ConnectivityMeasure

    x = _cleaned(seed)
    gone = [ZERO, OFFSET]
    keep = [k for k in range(x.shape[1]) if k not in gone]
    m = cn.connectivity(x, measure)
    ref = ConnectivityMeasure(kind=KINDS[measure]).fit_transform([x[:, keep].astype(np.float64)])[0]
    got, want = _scaled(m[np.ix_(keep, keep)], ref)
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    assert np.isfinite(m[np.ix_(keep, keep)]).all()  # the tiny and near-constant regions are kept
    assert np.isnan(m[gone]).all() and np.isnan(m[:, gone]).all()
    np.testing.assert_array_equal(np.flatnonzero(cn.left_out_columns(x)), gone)


def test_no_variance_is_relative_to_the_column_scale():
    x = _cleaned(0).astype(np.float64)
    x[:, 0] = 1e6 + 1e-6 * np.sin(np.arange(x.shape[0]))  # float64 round-off around an offset: constant
    x[:, 1] *= 1e-30  # a signal in any unit varies
    assert np.flatnonzero(cn.no_variance(x)).tolist() == [0, ZERO, OFFSET]
    x[:, 3] = np.nan
    assert not cn.no_variance(x)[3] and cn.left_out_columns(x)[3]


def _write(tmp_path, x: np.ndarray, excluded: list[str]):
    np.save(tmp_path / "cleaned.npy", x)
    naming = RunNaming({"subject": "01", "task": "rest", "space": "MNI152NLin2009cAsym"}, desc="simple", atlas="blobs")
    writer = RunWriter(naming.sidecar(tmp_path / "out"), ChecksumCache(None))
    writer.begin()
    with pytest.warns(UserWarning) as caught:
        paths = write_relmats(writer, naming, tmp_path / "out", tmp_path / "cleaned.npy",
                              {"name": NAMES, "excluded": excluded}, measures=list(KINDS), fisher=False)
    writer.finish({})
    return paths, [str(w.message) for w in caught]


def test_relmat_files_list_the_constant_region_and_warn(tmp_path):
    from nilearn.connectome import ConnectivityMeasure

    x = _cleaned(7)
    x[:, OFFSET] = np.nan  # a region left out by --min-coverage
    excluded = ["n/a"] * len(NAMES)
    excluded[OFFSET] = "coverage 0.200 < --min-coverage 0.5"
    paths, messages = _write(tmp_path, x, excluded)
    flat = [m for m in messages if "without variance" in m]
    assert len(flat) == 1 and flat[0].startswith("sub-01_task-rest_") and ": zero;" in flat[0]
    keep = [k for k in range(len(NAMES)) if k not in (ZERO, OFFSET)]
    for path, kind in zip(paths, KINDS.values()):
        nodes, m = read_relmat(path)
        assert nodes == NAMES and "n/a" in path.read_text()
        for k in (ZERO, OFFSET):
            assert np.isnan(m[k]).all() and np.isnan(m[:, k]).all()
        ref = ConnectivityMeasure(kind=kind).fit_transform([x[:, keep].astype(np.float64)])[0]
        got, want = _scaled(m[np.ix_(keep, keep)], ref)
        np.testing.assert_allclose(got, want, atol=2e-6, rtol=0)  # the file holds 6 significant digits
        side = json.loads(path.with_suffix(".json").read_text())
        assert side["ExcludedNodes"] == ["zero", "offset"]
        assert side["ExcludedNodesReasons"] == {"zero": cn.NO_VARIANCE_REASON, "offset": excluded[OFFSET]}


def test_benchmark_edges_are_the_relmat_values_of_a_constant_region(tmp_path):
    x = _cleaned(11)
    paths, _ = _write(tmp_path, x, ["n/a"] * len(NAMES))
    run = SimpleNamespace(kind="labels", X=x, stem="sub-01_task-rest_atlas-blobs_desc-simple", meta={},
                          features=pd.DataFrame({"name": NAMES}),
                          samples=pd.DataFrame({"framewise_displacement": np.full(x.shape[0], 0.1)}))
    bench = read_benchmark_run(lambda _: run, tmp_path / "unused.json")
    assert bench.left_out == ("zero", "offset")
    _, m = read_relmat(paths[0])
    i, j = db.edge_index(len(NAMES))
    np.testing.assert_array_equal(np.isnan(bench.connectivity), np.isnan(m[i, j]))
    np.testing.assert_allclose(bench.connectivity, m[i, j], atol=1e-6)
    np.testing.assert_array_equal(db.connectivity_vector(x), cn.upper_triangle(cn.connectivity(x)))
