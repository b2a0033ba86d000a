"""The raw dataset's ``participants.tsv``, read one way for the loader (``bidsapp.dataset(kind="connectivity",
y=...)``) and the group level (the ``age`` and ``sex`` covariates of QC-FC): one row per ``participant_id``,
written ``sub-<label>``; ``n/a``, an empty cell and a number that is not finite (``NaN``, ``inf``) are no value."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Participants:
    """The rows of a ``participants.tsv`` by ``participant_id``, every value as written (text)."""

    path: Path
    columns: list[str]
    rows: dict[str, dict[str, str]]


def is_missing(text: str | None) -> bool:
    """Is a ``participants.tsv`` cell no value: None (not listed), ``n/a``, empty, or a number that is not
    finite (``NaN``, ``inf``)?"""
    if text is None or text.strip() in ("n/a", ""):
        return True
    return not is_finite_or_text(text)


def is_finite_or_text(text: str) -> bool:
    """False for the text of a number that is not finite (``NaN``, ``nan``, ``inf``, ``-Infinity``)."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return True


def read_participants(path: str | Path) -> Participants | None:
    """The rows of a ``participants.tsv`` by ``participant_id`` (None when the file has no such column).

    Parameters
    ----------
    path : str or Path
        The raw dataset's ``participants.tsv``.

    Returns
    -------
    Participants or None

    Raises
    ------
    ValueError
        A ``participant_id`` without the ``sub-`` prefix (BIDS writes ``sub-<label>``, the runs' names too, so
        no run would match it), or on two rows (which one holds the participant's values is unknown); the
        file's rows are not read in either case.
    """
    from bidsapp.core.tsv import read_tsv

    path = Path(path)
    header, rows = read_tsv(path)
    if "participant_id" not in header:
        return None
    column = header.index("participant_id")
    ids = [row[column].strip() for row in rows]
    lacking = [pid for pid in ids if not pid.startswith("sub-")]
    if lacking:
        quoted = lacking[0].strip("\"'")
        fix = (f"write {quoted!r} without quotes (TSV cells are not quoted)" if quoted != lacking[0]
               else f"write 'sub-{lacking[0]}'")
        raise ValueError(f"{path}: participant_id values lack the sub- prefix ({len(lacking)} of {len(ids)}, e.g. "
                         f"{lacking[0]!r}), so they match no run; BIDS writes them sub-<label>: {fix}.")
    seen: set[str] = set()
    for pid in ids:
        if pid in seen:
            raise ValueError(f"{path}: participant_id {pid} is on {ids.count(pid)} rows, so which row holds its "
                             "values is unknown; keep one row per participant (delete or merge the others).")
        seen.add(pid)
    return Participants(path=path, columns=header, rows={pid: dict(zip(header, row)) for pid, row in zip(ids, rows)})
