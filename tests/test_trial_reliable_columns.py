"""Dataset.reliable_columns: split-half reliability from the training rows only, ranked."""

import numpy as np
import pandas as pd
import pytest

from bidsapp.api import Dataset


def _dataset(seed=0, n_stim=8, n_runs=4, n_cols=30, reliable=10):
    rng = np.random.default_rng(seed)
    pattern = rng.normal(size=(n_stim, n_cols))
    rows, X = [], []
    for r in range(n_runs):
        for s in rng.permutation(n_stim):
            noise = rng.normal(size=n_cols)
            x = noise.copy()
            x[:reliable] += 3 * pattern[s, :reliable]
            X.append(x)
            rows.append({"stimulus": f"s{s}", "trial_type": "a" if s % 2 else "b", "source": f"run-{r}"})
    table = pd.DataFrame(rows)
    return Dataset(X=np.array(X), y=table["trial_type"].to_numpy(), groups=table["source"].to_numpy(), table=table,
                   features=pd.DataFrame({"column": range(n_cols)}))


def test_reliable_columns_ranked_first_and_train_only():
    ds = _dataset()
    train = np.isin(ds.groups, ["run-0", "run-1", "run-2"])
    top = ds.reliable_columns(train, repeats="stimulus", n_columns=10)
    assert set(top.tolist()) == set(range(10))
    ds.X[~train] = 0.0  # the held-out run changes: the choice does not
    np.testing.assert_array_equal(ds.reliable_columns(["run-0", "run-1", "run-2"], repeats="stimulus",
                                                      n_columns=10), top)
    np.testing.assert_array_equal(ds.reliable_columns(np.flatnonzero(train), repeats="stimulus", n_columns=10), top)
    assert len(ds.reliable_columns(train, repeats="stimulus", min_reliability=0.5)) >= 9


def test_reliable_columns_refuses_labels_and_unknown_input():
    ds = _dataset()
    with pytest.raises(ValueError, match="circular"):
        ds.reliable_columns(ds.groups == "run-0", repeats="trial_type")
    with pytest.raises(ValueError, match="not a column"):
        ds.reliable_columns(ds.groups == "run-0", repeats="nope")
    with pytest.raises(ValueError, match="not runs of the dataset"):
        ds.reliable_columns(["run-9"], repeats="stimulus")
