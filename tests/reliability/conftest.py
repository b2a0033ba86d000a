"""Fixtures of the tests of outputs that stay true: the demo dataset processed once per module."""

from __future__ import annotations

import shutil

import pytest

from bidsapp.cli.run import main
from bidsapp.demo import make_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Demo dataset and a reference output of participant 01 (default settings)."""
    base = tmp_path_factory.mktemp("rel")
    bids = base / "bids"
    make_dataset(bids, n_volumes=60)
    ref = base / "ref"
    assert main([str(bids), str(ref), "participant", "--participant-label", "01", "--nprocs", "1"]) == 0
    return bids, ref


@pytest.fixture
def out(data, tmp_path):
    """A copy of the reference outputs to mutate."""
    _, ref = data
    dst = tmp_path / "out"
    shutil.copytree(ref, dst)
    return dst
