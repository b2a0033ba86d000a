"""Connectivity matrices as machine-learning rows: one row per run (the upper triangle of its ``_relmat.tsv``),
targets from the raw dataset's ``participants.tsv`` (``bidsapp.dataset(kind="connectivity", y="age")``)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

from bidsapp.core import connectivity as cn
from bidsapp.core.qc import qc_values


def measure_label(measure: str) -> str:
    """The ``meas-`` label of a measure given as ``--connectivity`` spells it or as its label."""
    if measure in cn.MEASURES:
        return cn.MEASURES[measure]
    if measure in cn.MEASURES.values():
        return measure
    raise ValueError(f"measure={measure!r}: use one of {list(cn.MEASURES)} (or their labels "
                     f"{list(cn.MEASURES.values())}).")


def read_relmat(path: Path) -> tuple[list[str], np.ndarray]:
    """Node names and the matrix of a ``_relmat.tsv`` (``node`` column, then one column per node; n/a = NaN)."""
    import pandas as pd

    df = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False, dtype={"node": str})
    return df["node"].tolist(), df.drop(columns="node").to_numpy(np.float64)


def run_matrix(run, label: str) -> tuple[list[str], np.ndarray]:
    """The run's ``_meas-<label>_relmat.tsv``, as listed by its sidecar."""
    name = f"{run.stem}_meas-{label}_relmat.tsv"
    if name not in run.outputs or not (run.folder / name).is_file():
        made = (run.meta.get("Parameters") or {}).get("connectivity") or []
        why = (f"it was made with --connectivity {' '.join(made)}" if made else "it was made without --connectivity")
        raise FileNotFoundError(f"{run.folder / name}: not written for this run ({why}); rerun the participant "
                                "level with --connectivity and that measure, or choose another measure=.")
    return read_relmat(run.folder / name)


def participants_file(output_dir: Path, bids_dir: str | Path | None) -> Path:
    """``participants.tsv`` of the raw dataset: in ``bids_dir``, else in a dataset the output's
    ``dataset_description.json`` lists in ``SourceDatasets`` (the raw one first)."""
    if bids_dir is not None:
        path = Path(bids_dir) / "participants.tsv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file; bids_dir= must be the raw BIDS dataset (with its "
                                    "participants.tsv).")
        return path
    candidates = []
    try:
        desc = json.loads((Path(output_dir) / "dataset_description.json").read_text())
        sources = sorted(desc.get("SourceDatasets") or [], key=lambda d: d.get("Name") != "raw")
    except (OSError, ValueError):
        sources = []
    for source in sources:
        url = urlparse(str(source.get("URL", "")))
        if url.scheme == "file":
            root = Path(unquote(url.path))
            candidates += [root / "participants.tsv", root.parent.parent / "participants.tsv"]  # fMRIPrep's parent
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p in candidates) or "no SourceDatasets in its dataset_description.json"
    raise FileNotFoundError(f"{output_dir}: no participants.tsv found (looked in: {looked}); pass bids_dir= (the "
                            "raw BIDS dataset).")


def participant_values(path: Path, y: str) -> dict[str, object]:
    """``participant_id`` (``sub-<label>``) -> the ``y`` column of a ``participants.tsv`` (numbers as floats when
    every value is a number; None for no value: ``n/a``, an empty cell, ``NaN``).

    Raises
    ------
    ValueError
        No ``participant_id`` or ``y`` column, ids without the ``sub-`` prefix, a participant on two rows
        (:func:`bidsapp.bids.participants.read_participants`).
    """
    from bidsapp.bids.participants import is_missing, read_participants

    table = read_participants(path)
    if table is None:
        raise ValueError(f"{path}: no participant_id column; a BIDS participants.tsv starts with it.")
    if y not in table.columns:
        raise ValueError(f"y={y!r}: no column {y!r} in {path} (columns: {table.columns}); choose one of them "
                         "or pass bids_dir= with another participants.tsv.")
    values = {pid: (None if is_missing(row[y]) else row[y]) for pid, row in table.rows.items()}
    try:
        return {pid: (None if v is None else float(v)) for pid, v in values.items()}
    except ValueError:  # a text column (e.g. diagnosis): as written
        return values


def with_target(runs: list, targets: dict[str, object], y: str, path: Path | None = None) -> list[int]:
    """Indices of the runs whose participant has a ``y`` value; the others are left out with one warning
    naming their participants.

    Raises
    ------
    ValueError
        No run has a ``y`` value (the message shows the ids of ``participants.tsv`` and of the runs).
    """
    have = [k for k, run in enumerate(runs) if targets.get(f"sub-{run.entities['subject']}") is not None]
    missing = sorted({f"sub-{run.entities['subject']}" for k, run in enumerate(runs) if k not in have})
    where = path or "participants.tsv"
    if not have:
        listed = sorted(pid for pid, v in targets.items() if v is not None)
        raise ValueError(f"{where}: no run's participant has a {y!r} value (participant_id with a value: "
                         f"{', '.join(listed[:5]) or 'none'}{' ...' if len(listed) > 5 else ''}; the runs': "
                         f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}); nothing to stack: fill "
                         f"in the {y!r} column or choose another y.")
    if missing:
        warnings.warn(f"{len(runs) - len(have)} run(s) left out: their participant has no {y!r} in {where} (n/a, "
                      f"empty, NaN or not listed): {', '.join(missing)}.", stacklevel=4)
    return have


def connectivity_rows(runs: list, picks: list[np.ndarray], *, measure: str, y: str, output_dir: Path,
                      bids_dir: str | Path | None, run_entities: tuple[str, ...], short: dict[str, str],
                      targets: dict[str, object] | None = None):
    """``X`` (one upper triangle per run), ``y``, ``groups`` (participant), the per-run table (entities and QC
    columns) and the edges table, for :func:`bidsapp.dataset` with ``kind="connectivity"``.

    ``short`` maps the entities' long names to their file-name keys (``subject`` -> ``sub``), for ``source``.
    ``targets`` (``participant_id`` -> ``y``, :func:`participant_values`) is read from ``participants.tsv`` when
    not given. Runs whose participant has no ``y`` are left out with a warning (:func:`with_target`; the loader
    leaves them out before choosing the columns, so none is left out here). Warns (:func:`warn_incomparable`)
    when a partial correlation was computed with a region dropped here, and when ``X`` holds NaN (regions left
    out by ``--min-coverage`` or without variance), naming the runs and regions.
    """
    import pandas as pd

    label = measure_label(measure)
    if targets is None:
        targets = participant_values(participants_file(output_dir, bids_dir), y)
    have = with_target(runs, targets, y)
    runs, picks = [runs[k] for k in have], [picks[k] for k in have]
    rows, records, ys, names = [], [], [], None
    dropped_here, nan_here = [], []
    for run, cols in zip(runs, picks):
        nodes, matrix = run_matrix(run, label)
        if len(nodes) != len(run.features):
            raise ValueError(f"{run.folder / run.stem}_meas-{label}_relmat.tsv: {len(nodes)} nodes for "
                             f"{len(run.features)} columns of the run; its outputs are inconsistent, rerun it.")
        participant = f"sub-{run.entities['subject']}"
        sub = matrix[np.ix_(cols, cols)]
        names = [nodes[c] for c in cols]
        rows.append(cn.upper_triangle(sub))
        dropped_here.append(sorted(set(nodes) - set(names)))
        nan_here.append([n for n, gone in zip(names, np.isnan(sub).all(axis=0)) if gone])
        ys.append(targets[participant])
        records.append({"source": "_".join(f"{short[k]}-{run.entities[k]}" for k in run_entities
                                           if k in run.entities),
                        "participant_id": participant, **{k: run.entities[k] for k in run_entities
                                                          if k in run.entities}, **qc_values(run.meta)})
    warn_incomparable(label, [r.stem for r in runs], dropped_here, nan_here)
    i, j = np.triu_indices(len(names), k=1)
    edges = pd.DataFrame({"edge": cn.edge_names(names), "node_a": [names[a] for a in i],
                          "node_b": [names[b] for b in j]})
    target = np.array(ys, dtype=float if all(isinstance(v, (int, float)) for v in ys) else object)
    return np.vstack(rows), target, pd.DataFrame(records), edges


def _listed(pairs: list[tuple[str, list[str]]]) -> str:
    """``run (a, b); run2 (c)`` for the first 5 runs, then how many more."""
    text = "; ".join(f"{stem} ({', '.join(names)})" for stem, names in pairs[:5])
    return text + (f"; and {len(pairs) - 5} more run(s)" if len(pairs) > 5 else "")


def warn_incomparable(label: str, stems: list[str], dropped: list[list[str]], nan: list[list[str]]) -> None:
    """Warnings about rows of ``kind="connectivity"`` that are not what a model expects.

    Parameters
    ----------
    label : str
        The ``meas-`` label.
    stems : list of str
        The runs stacked.
    dropped : list of list of str
        Per run, its regions not kept (not in every run).
    nan : list of list of str
        Per run, its kept regions whose rows and columns are NaN (``--min-coverage``, or no variance).
    """
    lost = [(s, d) for s, d in zip(stems, dropped) if d]
    if lost and label == cn.MEASURES["partial-correlation"]:
        warnings.warn(f"partial correlations were computed with regions that are not in every run and were "
                      f"dropped here, so the same edge is not the same quantity in every row (not comparable): "
                      f"{_listed(lost)}; use measure='correlation', or runs with the same regions.", stacklevel=4)
    holes = [(s, n) for s, n in zip(stems, nan) if n]
    if holes:
        warnings.warn(f"X contains NaN: regions left out of the connectivity (coverage below --min-coverage, or "
                      f"no variance over the run: the sidecar's ExcludedNodesReasons) in {len(holes)} run(s): "
                      f"{_listed(holes)}; drop those columns (np.isnan(ds.X).any(axis=0)) or impute them before "
                      "fitting, or rerun the participant level with a lower --min-coverage.", stacklevel=4)


def write_relmats(writer, naming, output_dir: Path, cleaned: Path, features: dict, *, measures: list[str],
                  fisher: bool, sources: list | None = None) -> list[Path]:
    """One ``_meas-<label>_relmat.tsv`` (and its ``.json``) per ``--connectivity`` measure, from the run's cleaned
    region series, through the run's transaction (``writer``).

    Parameters
    ----------
    writer : bidsapp.outputs.transaction.RunWriter
    naming : bidsapp.bids.naming.RunNaming
    output_dir : Path
    cleaned : Path
        The cleaned ``(n_kept, n_regions)`` ``.npy``.
    features : dict
        The features table (``name``; ``excluded`` for regions left out by ``--min-coverage``). Those regions
        and regions without variance (:func:`bidsapp.core.connectivity.left_out_columns`) are the sidecars'
        ``ExcludedNodes``, with their reasons; a warning names the run and the regions without variance.
    measures : list of str
        ``--connectivity`` values.
    fisher : bool
        ``--fisher-z``.
    """
    from bidsapp.core.tsv import format_tsv

    X = np.load(cleaned)
    names = [str(n) for n in features.get("name", [f"region-{k}" for k in range(X.shape[1])])]
    excluded = cn.exclusion_reasons(X, names, features.get("excluded"))
    flat = [n for n, why in excluded.items() if why == cn.NO_VARIANCE_REASON]
    if flat:
        listed = ", ".join(flat[:5]) + (f" and {len(flat) - 5} more" if len(flat) > 5 else "")
        warnings.warn(f"{naming.path(output_dir, 'timeseries', '.npy').name}: {len(flat)} region(s) without variance "
                      f"over the run's {X.shape[0]} kept volumes (a constant signal): {listed}; their connectivity "
                      "is undefined, so they are left out of the covariance estimate and their rows and columns of "
                      "the _relmat files are n/a (ExcludedNodes).", stacklevel=2)
    written = []
    for measure in measures:
        matrix = cn.connectivity(X, measure)
        if fisher and measure in cn.CORRELATIONS:
            matrix = cn.fisher_z(matrix)
        label = cn.MEASURES[measure]
        path = naming.path(output_dir, "relmat", ".tsv", meas=label)
        with writer.put(path) as tmp:
            tmp.write_text(format_tsv(cn.relmat_table(matrix, names)), encoding="utf-8")
        side = cn.relmat_sidecar(measure, fisher=fisher, n_samples=X.shape[0], excluded=excluded)
        side["Sources"] = [naming.path(output_dir, "timeseries", ".npy").name]
        with writer.put(path.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps(side, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written
