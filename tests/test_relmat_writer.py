"""The connectivity writer on any region kind (maps, spheres: named columns, a NaN column): files named as BIDS
connectivity derivatives, listed by the run's transaction, equal to nilearn, read back by the loader's reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bidsapp.bids.naming import RunNaming
from bidsapp.outputs.checksums import ChecksumCache
from bidsapp.outputs.connectomes import read_relmat, write_relmats
from bidsapp.outputs.transaction import RunWriter

KINDS = {"correlation": "correlation", "partial-correlation": "partial correlation", "covariance": "covariance"}


@pytest.mark.parametrize("fisher", [False, True])
@pytest.mark.parametrize("names", [["one", "two", "three", "four"], ["seed-1", "seed-2", "seed-3", "seed-4"]])
def test_relmats_through_the_transaction(tmp_path, fisher, names):
    from nilearn.connectome import ConnectivityMeasure

    rng = np.random.default_rng(len(names[0]) + fisher)
    X = (rng.normal(size=(80, 4)) @ rng.normal(size=(4, 4))).astype(np.float32)
    X[:, 2] = np.nan  # a region left out by --min-coverage
    np.save(tmp_path / "cleaned.npy", X)
    naming = RunNaming({"subject": "01", "task": "rest", "space": "MNI152NLin2009cAsym"}, desc="simple", atlas="blobs")
    writer = RunWriter(naming.sidecar(tmp_path / "out"), ChecksumCache(None))
    writer.begin()
    paths = write_relmats(writer, naming, tmp_path / "out", tmp_path / "cleaned.npy", {"name": names},
                          measures=list(KINDS), fisher=fisher)
    writer.finish({})
    listed = {e["Path"] for e in writer.entries}
    assert [p.name.split("_")[-2] for p in paths] == ["meas-PearsonCorrelation", "meas-PartialCorrelation",
                                                      "meas-Covariance"]
    assert paths[0].name == "sub-01_task-rest_space-MNI152NLin2009cAsym_atlas-blobs_desc-simple_" \
                            "meas-PearsonCorrelation_relmat.tsv"
    keep = [0, 1, 3]
    for path, kind in zip(paths, KINDS.values()):
        assert path.name in listed and path.with_suffix(".json").name in listed
        nodes, m = read_relmat(path)
        assert nodes == names and np.isnan(m[2]).all() and np.isnan(m[:, 2]).all()
        ref = ConnectivityMeasure(kind=kind).fit_transform([X[:, keep].astype(np.float64)])[0]
        got = m[np.ix_(keep, keep)]
        side = json.loads(path.with_suffix(".json").read_text())
        assert side["ExcludedNodes"] == [names[2]] and side["NumberOfSamples"] == 80
        if fisher and kind != "covariance":
            off = ~np.eye(3, dtype=bool)
            np.testing.assert_allclose(np.tanh(got[off]), ref[off], atol=1e-6)
            assert side["Measure"].endswith("FisherZ")
        else:
            np.testing.assert_allclose(got, ref, atol=1e-6 * np.abs(ref).max())
