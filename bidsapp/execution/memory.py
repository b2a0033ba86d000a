"""Memory model: each node's peak memory, estimated from the run's size before it starts.

nipype's MultiProc starts a node only when the sum of the running nodes' ``mem_gb`` fits in
``--mem-gb``; the estimates below are upper bounds of a node's peak resident memory (tested by
re-running every node of real runs of two sizes in a fresh process, ``tests/test_resources.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bidsapp.outputs.writers import sink_memory

GB = 1024**3
#: a worker process with numpy, scipy, nibabel and nipype imported, plus nipype's own bookkeeping
BASE_GB = 0.35
#: columns cleaned per BLAS product, bytes of a chunk's float64 buffer, fewest columns of a chunk (the step-wise
#: path's, the larger) and most threads cleaning chunks at once, each with its own buffers
#: (``bidsapp.core.signal.apply_operator``: its default chunk_size, BUFFER_BYTES, MIN_STEPWISE_COLUMNS and
#: CLEAN_THREADS)
CLEAN_CHUNK, CLEAN_BUFFER_BYTES, CLEAN_MIN_COLUMNS, CLEAN_THREADS = 16384, 8 << 20, 512, 4
#: columns of the LSS betas computed per product (``bidsapp.interfaces.segment``)
LSS_CHUNK = 32768
#: bytes of the float64 copy of one chunk of columns in standardized DVARS and the temporal moments
#: (``bidsapp.core.qc``), and columns of the carpet (``bidsapp.core.carpet``)
DVARS_CHUNK_BYTES, CARPET_COLUMNS = 2 << 20, 2000
#: most threads the QC's column chunks run in (``bidsapp.core.qc.QC_THREADS``), each with its own chunk
QC_THREADS = 4
#: decompression read-ahead (python-isal's threaded reader) and per-volume buffers, and the BOLD's checksum
#: computed while it is read (``bidsapp.core.io.HashingReader``: two 8 MiB copies of compressed blocks waiting
#: for the hashing thread)
STREAM_BUFFERS = 56 * 2**20
#: margin on the data terms (allocator slack, small temporaries)
MARGIN = 1.5
#: columns of a joined trial model fitted at a time (``bidsapp.core.trial_fit.CHUNK``)
TRIAL_CHUNK = 4096


@dataclass(frozen=True)
class RunSize:
    """What decides a run's memory: volumes, features (mask voxels, an upper bound in atlas mode),
    grid voxels, trials and samples per trial segment."""

    n_volumes: int
    n_features: int
    grid_voxels: int
    n_trials: int = 0
    n_offsets: int = 0


def node_memory_gb(size: RunSize, *, smoothing: bool = False, lss: bool = False, joined: bool = False,
                   output_format: tuple[str, ...] = ("npy",), space_cls: type | None = None,
                   column_terms: dict[str, int] | None = None, trial_basis: int = 1,
                   hrf_shapes: int = 1) -> dict[str, float]:
    """Upper bound of each node's peak memory (GB) for a run of ``size``.

    ``lss`` is True when trial-wise estimates (LSS or LSA) are computed; ``trial_basis`` is the number of
    coefficients per trial (derivatives: 2-3, FIR: one per bin) and ``hrf_shapes`` the number of library HRF
    shapes compared per column (``--hrf library``: 20).

    ``joined``: the run's trial estimates come from its participant's joined trial model (``trialmodel``: this
    run's share, summed over the runs by :func:`joined_memory_gb`; 0 otherwise).
    ``column_terms`` are the bytes the run's column space adds to nodes
    (:meth:`bidsapp.core.columns.base.ColumnSpace.memory_terms`: maps' pseudo-inverse, spheres' sparse matrix).

    Returns
    -------
    dict
        Node name (``provenance``, ``mask``, ``masking``, ``cleaning``, ``segmentation``,
        ``report``, ``derivatives``) -> GB.
    """
    t, v, g = size.n_volumes, size.n_features, size.grid_voxels
    x = t * v * 4  # the float32 array
    clean_chunk = 8 * t * min(v, CLEAN_CHUNK, max(CLEAN_MIN_COLUMNS, CLEAN_BUFFER_BYTES // (8 * max(t, 1))))
    qc = qc_buffer_bytes(t, v)
    data = {
        "provenance": 0,
        "mask": g * 8 * 6,  # mean volume (float64) and the mask computation's temporaries
        # the array, per-volume temporaries (8 volumes with smoothing) and the mean image's float64 accumulator
        "masking": x + g * 8 * (8 if smoothing else 3) + g * 8 + STREAM_BUFFERS,
        # the QC metrics (before cleaning, then of the cleaned array) and the cleaning's chunks, one after the other,
        # and the carpet's columns
        # (each cleaning thread: the chunk, the product or the censored rows' copy, a kept-rows copy)
        "cleaning": x + 8 * t * t * 8 + max(3 * CLEAN_THREADS * clean_chunk, qc) + carpet_buffer_bytes(t, v),
        "segmentation": x + size.n_trials * (size.n_offsets + 1) * v * 4
        + (_estimates_bytes(size, trial_basis, hrf_shapes) if lss else 0),
        # optimized / --trial-denoise / --trial-ridge: this run's share of its participant's joined trial model
        # (the run's data in float64, its projected copy and a held-out copy; a chunk of ridge coefficients;
        # with the library, the selection's float64 chunk and per-shape statistics)
        "trialmodel": (3 * t * v * 8 + 20 * (size.n_trials + t) * min(v, TRIAL_CHUNK) * 8
                       + ((t + 3 * hrf_shapes) * min(v, 8 * TRIAL_CHUNK) * 8 if hrf_shapes > 1 else 0))
        if joined else 0,
        # the cleaning node's carpet (uint8, read and compressed again) and the mean image (the masking node's,
        # loaded: the BOLD is not streamed)
        "report": 4 * t * min(v, CARPET_COLUMNS) + g * 4 * 2,
        "derivatives": sink_memory(output_format, space_cls, g, v) + g * 4 * 3,
    }
    for node, nbytes in (column_terms or {}).items():
        data[node] += nbytes
    return {node: round(BASE_GB + MARGIN * nbytes / GB, 3) for node, nbytes in data.items()}


def carpet_buffer_bytes(n_volumes: int, n_features: int) -> int:
    """Peak bytes of the carpet's columns in the cleaning node (``bidsapp.core.carpet``): the columns before
    and after cleaning and the cleaned columns' z-scores (float32), and the float64 temporaries of z-scoring one
    chunk of columns (about 5 chunks of at most :data:`DVARS_CHUNK_BYTES`).

    Parameters
    ----------
    n_volumes, n_features : int

    Returns
    -------
    int
    """
    columns = min(n_features, CARPET_COLUMNS)
    return 3 * 4 * n_volumes * columns + 5 * min(DVARS_CHUNK_BYTES, 8 * n_volumes * columns)


def qc_buffer_bytes(n_volumes: int, n_features: int) -> int:
    """Peak bytes of the QC computations' buffers beyond the run's array (``bidsapp.core.qc``): standardized
    DVARS holds a chunk of columns in the input's dtype, its sorted copy, the float64 copy, the centred copy and
    the temporal differences (about 5 float64 chunks of at most :data:`DVARS_CHUNK_BYTES`; the temporal moments
    hold fewer chunks of the same size); each of up to 4 threads holds its own. The per-column results (means,
    standard deviations, the kept volumes' means and their work arrays: about 6 float64 vectors) come on top.

    Parameters
    ----------
    n_volumes, n_features : int

    Returns
    -------
    int
    """
    chunk = min(DVARS_CHUNK_BYTES, 8 * n_volumes * n_features)
    return QC_THREADS * 5 * chunk + 6 * 8 * n_features


def _estimates_bytes(size: RunSize, basis: int, shapes: int) -> int:
    """Trial-wise estimates beyond one float32 beta per trial and column: the other coefficients, the float64
    chunk products, the weights and designs, and the library selection's per-shape statistics."""
    t, v, n = size.n_volumes, size.n_features, size.n_trials
    chunk = min(v, LSS_CHUNK)
    return ((basis - 1) * n * v * 4 + (n * basis + t) * chunk * 8 * 2 + 6 * n * basis * t * 8
            + (3 * 3 * shapes * chunk * 8 + shapes * t * 8 if shapes > 1 else 0))


def machine_memory_gb() -> float:
    """Physical memory of this machine (or of the container's cgroup limit when lower), in GB."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(path).read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text) / GB)
    return total


def default_mem_gb() -> float:
    """Default ``--mem-gb``: 90 % of the machine's memory (nipype's own default)."""
    return round(0.9 * machine_memory_gb(), 1)


def joined_memory_gb(run_estimates: list[float]) -> float:
    """Memory (GB) of a node joining runs: the base once plus each run's data term (``trialmodel`` estimates)."""
    return round(BASE_GB + sum(max(0.0, gb - BASE_GB) for gb in run_estimates), 3)
