"""Zero-phase Butterworth filtering of many columns as matrix products over blocks of samples.

scipy's ``sosfilt`` runs the recursion of a cascade of second-order sections one column at a time: a scalar
dependency chain, about 3 ns per sample and section on the development machine, whatever the number of
columns. The cascade is a linear system whose state is its sections' delay registers (``2 * n_sections``
values, in ``sosfilt``'s ``zi`` order). Over a block of ``B`` consecutive samples its output is the block's
input times the B x B impulse-response matrix ``H`` plus the state at the block's start times the free
response ``O`` (B x n), and its state at the block's end is the state at the start times ``Phi`` (the
transition over B samples, n x n) plus the input times ``G`` (n x B). Applied to many columns at once, each
of these is a BLAS product: one pass of the filter costs about ``2 B + 4 n`` multiply-adds per sample,
vectorised across columns, and only the state (n values per column) is carried from block to block.

Both passes run in place in one padded buffer: a block's output replaces its input once the state has moved
on, and the backward pass (the filter of the reversed series) walks the blocks from the end with the block
matrices reversed instead of reversing the series (no second buffer, no reversed copies; the step-wise
cleaning path 5-12 % less CPU at T = 1,200-4,000, ``benchmarks/bench_cleaning_paths.py``).

The four matrices are computed by the cascade's own recursion (:func:`bidsapp.core.butterworth.sosfilt`,
scipy's ``sosfilt`` to the bit) on unit impulses and unit states, so the result is
``scipy.signal.sosfiltfilt``'s to round-off (about 1e-12 of a column's scale; the recursion's state
decays as the filter's poles, so errors do not grow along the run).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from bidsapp.core.butterworth import sosfilt, sosfilt_zi

#: samples per block: the products cost ~2 * BLOCK multiply-adds per sample and the loop over blocks one
#: Python iteration per BLOCK samples; 16 and 32 were fastest (12-13 ns per sample for both passes, T = 300
#: to 4,000, 512-4,096 columns, one BLAS thread), 64 and more 1.3-1.5x slower
BLOCK = 16
#: columns filtered together: one block's input and output (BLOCK x COLUMNS float64) stay in cache, and
#: each product stays under OpenBLAS's size for threading its own (m * n * k < 262,144: so callers can run
#: column groups in threads without oversubscribing the cores); wider groups spread the loop's per-block calls
#: over more columns
COLUMNS = 1000


class BlockMatrices(NamedTuple):
    """The state-space form of a second-order-section cascade over blocks of ``block`` samples."""

    impulse: np.ndarray  #: H, (block, block): output at row i from a unit input at sample j (lower triangular)
    free: np.ndarray  #: O, (block, n_state): output from a unit initial state, zero input
    transition: np.ndarray  #: Phi, (n_state, n_state): state after the block from a unit initial state
    gain: np.ndarray  #: G, (n_state, block): state after the block from a unit input at sample j
    steady: np.ndarray  #: (n_state, 1): ``sosfilt_zi``, the state of a constant unit input


def padlen_of(sos: np.ndarray) -> int:
    """``sosfiltfilt``'s default odd-padding length for ``sos``."""
    return 3 * (2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum()))


@functools.lru_cache(maxsize=16)
def _matrices(sos_bytes: bytes, n_sections: int, block: int) -> BlockMatrices:
    sos = np.frombuffer(sos_bytes, dtype=np.float64).reshape(n_sections, 6).copy()
    n = 2 * n_sections
    impulse, after_input = sosfilt(sos, np.eye(block), zi=np.zeros((n_sections, 2, block)))
    free, after_state = sosfilt(sos, np.zeros((block, n)), zi=np.eye(n).reshape(n_sections, 2, n))
    steady = sosfilt_zi(sos).reshape(n, 1)
    mats = BlockMatrices(impulse, free, after_state.reshape(n, n), after_input.reshape(n, block), steady)
    for m in mats:
        m.setflags(write=False)
    return mats


def block_matrices(sos: np.ndarray, block: int = BLOCK) -> BlockMatrices:
    """:class:`BlockMatrices` of ``sos`` (cached: a run's columns all use the same few)."""
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    return _matrices(sos.tobytes(), sos.shape[0], int(block))


def _causal_pass(u: np.ndarray, state: np.ndarray, mats: BlockMatrices, backward: bool = False) -> None:
    """``sosfilt`` of each column of ``u`` (n_samples, n_columns, C-contiguous) from ``state`` (n_state,
    n_columns), in place; ``backward``: of each column read from its end (the filter of the reversed series,
    written in the series' own order).

    Only a block's input (B rows) and a scratch block are live: each block's output is computed from its input
    and the state, the state moves on, then the output replaces the input. Read from the end, the blocks are
    taken last to first with the block matrices reversed (``J H J``, ``J O``, ``G J``, ``J``: the exchange
    matrix), so no reversed copy of the series is made. A last (first, backward) block shorter than B uses
    the top-left corner of the matrices (its end state is not needed)."""
    b, n = mats.impulse.shape[0], u.shape[0]
    impulse, free, gain = (mats.impulse[::-1, ::-1], mats.free[::-1], mats.gain[:, ::-1]) if backward else \
        (mats.impulse, mats.free, mats.gain)
    scratch, response = np.empty((b, u.shape[1])), np.empty((b, u.shape[1]))
    # blocks of b samples from the series' start (backward: from its end), the last one shorter
    for a, stop in ((max(e - b, 0), e) for e in range(n, 0, -b)) if backward else \
            ((a, min(a + b, n)) for a in range(0, n, b)):
        if stop - a < b:  # the series' last samples (read from its end: its first ones)
            r = stop - a
            block = u[a:stop]
            part = (slice(b - r, b), slice(b - r, b)) if backward else (slice(0, r), slice(0, r))
            block[...] = impulse[part] @ block + free[part[0]] @ state
            continue
        block = u[a:stop]
        np.matmul(impulse, block, out=scratch)
        scratch += np.matmul(free, state, out=response)
        state = mats.transition @ state
        state += gain @ block
        block[...] = scratch


def _filtfilt_group(y: np.ndarray, mats: BlockMatrices, p: int) -> np.ndarray:
    """Forward and backward passes over a group of columns, in one padded buffer; the filtered rows of it."""
    n = y.shape[0]
    ext = np.empty((n + 2 * p, y.shape[1]))
    ext[p:p + n] = y
    if p:
        ext[:p] = 2 * y[:1] - y[p:0:-1]
        ext[p + n:] = 2 * y[-1:] - y[-2:-p - 2:-1]
    _causal_pass(ext, mats.steady * ext[:1], mats)
    _causal_pass(ext, mats.steady * ext[-1:], mats, backward=True)
    return ext[p:p + n]


def sosfiltfilt_columns(sos: np.ndarray, y: np.ndarray, block: int = BLOCK, out: np.ndarray | None = None
                        ) -> np.ndarray:
    """``scipy.signal.sosfiltfilt(sos, y, axis=0)`` (odd padding, default padlen) to round-off.

    Parameters
    ----------
    sos : numpy.ndarray, shape (n_sections, 6)
        Second-order sections.
    y : numpy.ndarray, shape (n_samples, n_columns)
        The series, one per column; read, not modified.
    block : int
        Samples per block of the products.
    out : numpy.ndarray, optional
        Receives the result (float64, the shape of ``y``; may be ``y`` itself).

    Returns
    -------
    numpy.ndarray, shape (n_samples, n_columns), float64
        The filtered columns, computed by groups of ``COLUMNS``.

    Raises
    ------
    ValueError
        When the series is not longer than the filter's padding.
    """
    n = y.shape[0]
    p = padlen_of(sos)
    if n <= p:
        raise ValueError(
            f"The series has {n} kept volumes but the Butterworth filter needs more than {p}; "
            "use filter='cosine', fewer censored volumes, or no temporal filter.")
    mats = block_matrices(sos, block)
    out = np.empty(y.shape) if out is None else out
    for a in range(0, y.shape[1], COLUMNS):
        out[:, a:a + COLUMNS] = _filtfilt_group(y[:, a:a + COLUMNS], mats, p)
    return out
