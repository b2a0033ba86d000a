"""``bidsapp.dataset(kind="connectivity")``: its ``source`` column read "subject-01_task-..." (long entity
names), it dropped a region missing from some runs without saying that partial correlations computed with it
are not comparable, and X with NaN (a region left out by --min-coverage) reached sklearn's "Input X contains
NaN" without a word. Runs here are ``_relmat.tsv`` files of random region series, read back as the loader does."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bidsapp.core import connectivity as cn
from bidsapp.core.tsv import format_tsv

NAMES = ["R1", "R2", "R3", "R4", "R5"]


def _run(folder: Path, sub: str, names: list[str], measure: str, rng, nan: tuple[str, ...] = ()):
    """One run's relmat of ``measure`` (from random series) and what the reader gives of it."""
    stem = f"sub-{sub}_task-rest_run-1_space-MNI_atlas-demo_desc-simple"
    X = rng.standard_normal((100, len(names))) @ rng.standard_normal((len(names), len(names)))
    for name in nan:
        X[:, names.index(name)] = np.nan
    label = cn.MEASURES[measure]
    (folder / f"{stem}_meas-{label}_relmat.tsv").write_text(format_tsv(cn.relmat_table(cn.connectivity(X, measure),
                                                                                       names)))
    features = pd.DataFrame({"label": [NAMES.index(n) + 1 for n in names], "name": names})
    return SimpleNamespace(stem=stem, folder=folder, outputs=[f"{stem}_meas-{label}_relmat.tsv"], meta={},
                           features=features, kind="labels",
                           entities={"subject": sub, "task": "rest", "run": "1", "space": "MNI", "atlas": "demo"})


def _rows(tmp_path, runs, measure):
    from bidsapp.api import _RUN_ENTITIES, _SHORT, _column_space
    from bidsapp.outputs.connectomes import connectivity_rows

    (tmp_path / "participants.tsv").write_text("participant_id\tage\n" + "".join(f"sub-{r.entities['subject']}\t"
                                                                                 f"{20 + k}\n"
                                                                                 for k, r in enumerate(runs)))
    picks, _ = _column_space(runs)
    return connectivity_rows(runs, picks, measure=measure, y="age", output_dir=tmp_path, bids_dir=tmp_path,
                             run_entities=_RUN_ENTITIES, short=_SHORT)


def test_source_uses_the_file_name_keys(tmp_path):
    rng = np.random.default_rng(0)
    runs = [_run(tmp_path, s, NAMES, "correlation", rng) for s in ("01", "02")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same regions, no NaN: nothing to warn about
        X, y, table, _ = _rows(tmp_path, runs, "correlation")
    assert list(table["source"]) == ["sub-01_task-rest_run-1", "sub-02_task-rest_run-1"]
    assert all(Path(f"{s}_space-MNI").name.startswith(r.stem[:len(s)]) for s, r in zip(table["source"], runs))


@pytest.mark.parametrize("measure", ["partial-correlation", "correlation"])
def test_a_region_missing_in_some_runs_warns_when_partial_correlations_are_not_comparable(tmp_path, measure):
    rng = np.random.default_rng(1)
    runs = [_run(tmp_path, "01", NAMES, measure, rng), _run(tmp_path, "02", NAMES[:4], measure, rng),
            _run(tmp_path, "03", NAMES, measure, rng)]
    with pytest.warns(UserWarning) as caught:
        X, *_ = _rows(tmp_path, runs, measure)
    assert X.shape == (3, 6)
    text = [str(w.message) for w in caught]
    partial = [t for t in text if "not comparable" in t]
    if measure == "partial-correlation":
        assert len(partial) == 1 and runs[0].stem in partial[0] and "R5" in partial[0]
        assert runs[1].stem not in partial[0]
    else:
        assert partial == []  # a correlation does not depend on the other regions


def test_nan_in_x_is_said_with_the_runs_and_regions(tmp_path):
    rng = np.random.default_rng(2)
    runs = [_run(tmp_path, "01", NAMES, "correlation", rng, nan=("R3",)),
            _run(tmp_path, "02", NAMES, "correlation", rng)]
    with pytest.warns(UserWarning, match="X contains NaN") as caught:
        X, *_ = _rows(tmp_path, runs, "correlation")
    message = [str(w.message) for w in caught if "X contains NaN" in str(w.message)][0]
    assert runs[0].stem in message and "(R3)" in message and runs[1].stem not in message
    assert np.isnan(X[0]).sum() == 4 and np.isfinite(X[1]).all()
