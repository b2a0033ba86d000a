"""Randomized equality with nilearn.signal.clean: looks for the inputs nobody thought of.

Each CI run draws a new base seed (``BIDSAPP_TEST_SEED`` fixes it); a failure prints the seed and the
case so that ``BIDSAPP_TEST_SEED=<seed> pytest tests/test_signal_random.py`` reproduces it. The reference
is nilearn on float64 copies of the same values, with its censoring interpolation corrected
(``tests/nilearn_ref.py``). Tolerance: 1e-4 of each column's standard deviation in the reference (plus
the rounding step of a float32 output). Columns constant on the kept volumes must be exactly 0 when
standardized (nilearn z-scores their round-off when the operator does not cancel exactly). Cases that
bidsapp refuses (too short for the filter, no degree of freedom) or warns about (fewer than 10 degrees
of freedom; numerically collinear confounds, condition number > 1e10) are not compared: what is left
there is mostly round-off, in nilearn as in bidsapp.
"""

from __future__ import annotations

import os
import secrets
import warnings

import numpy as np

from bidsapp.core import signal, sos_blocks
from tests.nilearn_ref import patched_interpolation

N_CASES = int(os.environ.get("BIDSAPP_TEST_CASES", 300))
SEED = int(os.environ.get("BIDSAPP_TEST_SEED", secrets.randbits(32)))
RTOL = 1e-4


def _censoring(rng: np.random.Generator, n: int) -> np.ndarray | None:
    kind = rng.choice(["none", "scattered", "ends", "gap", "all"])
    if kind == "none":
        return None
    keep = np.ones(n, bool)
    if kind in ("scattered", "all"):
        keep[rng.random(n) < rng.uniform(0.02, 0.2)] = False
    if kind in ("ends", "all"):
        keep[: rng.integers(1, max(2, n // 8))] = False
        keep[n - rng.integers(1, max(2, n // 8)):] = False
    if kind in ("gap", "all"):
        length = int(rng.integers(2, max(3, int(0.4 * n))))
        start = int(rng.integers(1, max(2, n - length - 1)))
        keep[start:start + length] = False
    return keep


def _case(rng: np.random.Generator) -> dict:
    n = int(rng.integers(20, 401))
    t_r = float(rng.choice([0.5, 0.8, 1.0, 2.0, 2.5, 3.0]))
    nyq = 0.5 / t_r
    kind = str(rng.choice(["none", "low", "high", "band", "cosine"]))
    high = float(rng.uniform(0.005, 0.05)) if kind in ("high", "band", "cosine") else None
    low = float(rng.uniform(max(high or 0, 0.02) * 1.5, 0.9 * nyq)) if kind in ("low", "band") else None
    ftype = {"none": None, "cosine": "cosine"}.get(kind, "butterworth")
    keep = _censoring(rng, n)
    n_kept = n if keep is None else int(keep.sum())
    n_conf = int(rng.integers(0, min(41, max(1, n_kept - 12))))
    n_cols = int(rng.integers(4, 12))
    dtype = str(rng.choice(["float32", "float64", "int16"]))
    t = np.arange(n) * t_r
    conf = rng.normal(size=(n, n_conf)) + np.outer(np.sin(t / rng.uniform(5, 50)), rng.normal(size=n_conf))
    mean = rng.uniform(-50, 1000, n_cols)
    std = rng.uniform(0.5, 50, n_cols)
    X = (mean + std * rng.normal(size=(n, n_cols)) + np.outer(t, rng.normal(0, 0.02, n_cols))
         + conf @ rng.normal(0, 2, (n_conf, n_cols)))
    if dtype == "int16":  # what masking gives for scaled int16: float32 of slope * int + intercept
        slope = max(float(rng.uniform(0.01, 0.5)), float(np.abs(X - 10).max()) / 32000)
        X = (np.clip(np.round((X - 10.0) / slope), -32768, 32767) * slope + 10.0).astype(np.float32)
    else:
        X = X.astype(dtype)
    n_const = int(rng.integers(0, 3))
    for j in range(n_const):  # constant and all-zero columns
        X[:, j] = 0 if j == 1 else rng.uniform(-1000, 1000)
    if rng.random() < 0.4:  # grayordinate runs arrive in the file's (Fortran) order
        X = np.asfortranarray(X)
    return dict(X=X, dtype=dtype, t_r=t_r, filter=ftype, low_pass=low, high_pass=high, sample_mask=keep,
                chunk_size=int(rng.integers(1, X.shape[1] + 3)),  # several chunks, a partial last one
                confounds=conf if n_conf else None, detrend=bool(rng.integers(0, 2)),
                standardize=[None, "zscore_sample", "psc"][int(rng.integers(0, 3))], n_const=n_const)


def _describe(c: dict) -> str:
    keep = c["sample_mask"]
    cens = "none" if keep is None else f"{int((~keep).sum())} censored at {np.flatnonzero(~keep).tolist()[:12]}..."
    conf = 0 if c["confounds"] is None else c["confounds"].shape[1]
    return (f"n={c['X'].shape[0]} dtype={c['dtype']} t_r={c['t_r']} filter={c['filter']} low={c['low_pass']} "
            f"high={c['high_pass']} confounds={conf} detrend={c['detrend']} standardize={c['standardize']} "
            f"censoring: {cens} constant columns={c['n_const']} order={'F' if c['X'].flags.f_contiguous else 'C'} "
            f"chunk_size={c['chunk_size']}")


def test_clean_equals_nilearn_on_random_inputs():
    from threadpoolctl import threadpool_limits  # installed with nilearn (scikit-learn)

    with threadpool_limits(1):  # small matrices: BLAS threads only contend (7x slower on a busy 2-core box)
        _compare_random_cases()


def _compare_random_cases():
    from nilearn.signal import clean as nl_clean

    rng = np.random.default_rng(SEED)
    failures, compared, refused, collinear, few_dof, i = [], 0, 0, 0, 0, 0
    while compared < N_CASES:
        i += 1
        c = _case(rng)
        kw = dict(t_r=c["t_r"], detrend=c["detrend"], standardize=c["standardize"], confounds=c["confounds"],
                  low_pass=c["low_pass"], high_pass=c["high_pass"])
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                before = c["X"].copy()
                ours = signal.clean(c["X"], filter=c["filter"], sample_mask=c["sample_mask"],
                                    chunk_size=c["chunk_size"], **kw)
            assert np.array_equal(before, c["X"], equal_nan=True), f"seed {SEED} case {i}: input modified"
        except ValueError as exc:  # too short for the Butterworth filter, or no degree of freedom left
            assert "Butterworth filter needs more than" in str(exc) or "degrees of freedom" in str(exc), (
                f"seed {SEED} case {i}: unexpected error {exc}: {_describe(c)}")
            refused += 1
            continue
        messages = [str(w.message) for w in caught]
        assert all("degrees of freedom" in m or "nearly collinear" in m for m in messages), messages
        if any("degrees of freedom" in m for m in messages):
            # fewer than 10 degrees of freedom (bidsapp warns): what is left is mostly round-off
            assert np.isfinite(ours).all()
            few_dof += 1
            continue
        if any("nearly collinear" in m for m in messages):
            # e.g. many cosine drifts over a long censoring gap: nilearn and bidsapp both remove directions
            # defined by round-off (differences up to 1e-2 of the column std); bidsapp says so
            collinear += 1
            continue
        keep = c["sample_mask"]
        with warnings.catch_warnings(), patched_interpolation():
            warnings.simplefilter("ignore")  # nilearn's own deprecation and short-series notes
            ref = nl_clean(c["X"].astype(np.float64), filter=c["filter"] or False,
                           sample_mask=None if keep is None else np.flatnonzero(keep), **kw)
        compared += 1
        assert ours.dtype == (np.float64 if c["X"].dtype == np.float64 else np.float32)
        assert ours.shape == ref.shape, f"seed {SEED} case {i}: shape {ours.shape} != {ref.shape}: {_describe(c)}"
        rows = slice(None) if keep is None else keep
        const = np.ptp(c["X"][rows], axis=0) == 0  # constant on the kept volumes (incl. the n_const columns)
        assert const[: c["n_const"]].all()
        if c["standardize"] is not None:
            if not (ours[:, const] == 0).all():
                failures.append(f"case {i}: constant columns not 0: {_describe(c)}")
            ours, ref = ours[:, ~const], ref[:, ~const]
            X = c["X"][:, ~const]
        else:
            X = c["X"]
        scale = np.maximum(ref.std(axis=0), 1e-6 * np.sqrt((X.astype(float) ** 2).mean(0)) + 1e-12)
        # plus the rounding of a float32 output (a kept mean of 1000 has a float32 step of 6e-5)
        scale += 4 * np.finfo(ours.dtype).eps * np.abs(ref).max(axis=0, initial=0.0) / RTOL
        err = (np.abs(ours - ref).max(axis=0) / scale).max(initial=0.0)
        if not err <= RTOL:
            failures.append(f"case {i}: max error {err:.2e} of the column std: {_describe(c)}")
    skipped = f"refused {refused}, collinear {collinear}, fewer than 10 degrees of freedom {few_dof}"
    print(f"BIDSAPP_TEST_SEED={SEED}: {compared} cases compared; not compared: {skipped}")
    assert refused + collinear + few_dof < compared / 2, f"seed {SEED}: too many cases not compared ({skipped})"
    assert not failures, f"BIDSAPP_TEST_SEED={SEED}: {len(failures)} of {compared} cases differ:\n" + "\n".join(
        failures[:10])


def test_stepwise_path_equals_the_dense_product_on_random_inputs():
    """The O(T) path (factors one after the other, the Butterworth filter on blocks of columns in threads)
    equals the dense operator product to 1e-6 of each column's standard deviation, whatever the
    censoring, filter, confounds, dtype, memory order, chunking and thread count; runs up to 1,500 volumes."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(SEED + 1)
    failures, compared = [], 0
    with threadpool_limits(1):
        while compared < max(N_CASES // 10, 12):
            c = _case(rng)
            n = int(np.exp(rng.uniform(np.log(20), np.log(1500))))
            t = np.arange(n) * c["t_r"]
            n_cols = int(rng.integers(1, sos_blocks.COLUMNS // 2))
            X = (rng.uniform(-50, 1000, n_cols) + rng.uniform(0.5, 50, n_cols) * rng.normal(size=(n, n_cols))
                 + np.outer(t, rng.normal(0, 0.02, n_cols))).astype(c["dtype"] if c["dtype"] != "int16" else "float32")
            if rng.random() < 0.4:
                X = np.asfortranarray(X)
            conf = c["confounds"]
            n_conf = 0 if conf is None else conf.shape[1]
            conf = rng.normal(size=(n, n_conf)) if n_conf and n_conf < n // 3 else None
            keep = _censoring(rng, n)
            try:
                op = signal.cleaning_operator(n, t_r=c["t_r"], detrend=c["detrend"], confounds=conf,
                                              filter=c["filter"], low_pass=c["low_pass"], high_pass=c["high_pass"],
                                              sample_mask=keep)
            except ValueError:
                continue
            compared += 1
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dense = signal.apply_operator(X, op, standardize=c["standardize"], method="dense")
                chunk = int(rng.integers(1, X.shape[1] + 3))
                steps = signal.apply_operator(X, op, standardize=c["standardize"], method="steps",
                                              chunk_size=chunk, threads=int(rng.integers(1, 4)))
            scale = np.maximum(dense.astype(np.float64).std(axis=0), 1e-300)
            scale += 4 * np.finfo(dense.dtype).eps * np.abs(dense).max(axis=0, initial=0.0) / 1e-6
            # plus the round-off of the float64 arithmetic itself, which scales with the input column's norm,
            # not with the output. Where the cleaning leaves almost nothing (a few degrees of freedom), the
            # output's std is itself round-off-sized and this term decides. Measured against the same factors
            # applied in long double (scipy's sosfiltfilt runs in long double): cosine high-pass + confounds
            # leaving only the mean (seed 3347657687, 38 kept volumes, dof 1) dense 0.67, step-wise 0.63 eps*||x||;
            # band-pass + censoring, dof 1-10 (seeds 2, 7, 10, 987654321): dense up to 150 (n = 412),
            # step-wise up to 26 eps*||x|| -- the dense product is the less exact path. In the compared (maybe
            # standardized) units: times std(standardized) / std(raw) of the column.
            raw = signal.apply_operator(X, op, standardize=None, method="dense").astype(np.float64)
            raw_std = raw.std(axis=0)
            units = np.divide(dense.astype(np.float64).std(axis=0), raw_std, out=np.zeros_like(raw_std),
                              where=raw_std > 0) if c["standardize"] is not None else 1.0
            roundoff = 16 * np.sqrt(n) * np.finfo(np.float64).eps * np.linalg.norm(X.astype(np.float64), axis=0)
            scale += roundoff * units / 1e-6
            err = (np.abs(dense.astype(np.float64) - steps).max(axis=0, initial=0.0) / scale).max(initial=0.0)
            if not err <= 1e-6:
                what = _describe(dict(c, X=X, sample_mask=keep, confounds=conf, chunk_size=chunk))
                failures.append(f"max error {err:.2e} of the column std: {what}")
    assert not failures, f"BIDSAPP_TEST_SEED={SEED}: {len(failures)} of {compared} cases differ:\n" + "\n".join(
        failures[:10])


def test_the_cost_model_takes_the_stepwise_path_on_long_band_passed_runs():
    """Band-pass + 36 confounds: dense up to T ~ 850, step-wise beyond (the operator's shape and factors
    are all the model reads; built here without the O(T^3) operator of a 4,000-volume run)."""
    sos = signal.butterworth_sos(0.5, 0.08, 0.01)
    for n, expected in ((300, False), (600, False), (1200, True), (2000, True), (4000, True)):
        steps = signal.OperatorSteps(rows=None, censored=None, spline=None, keep=None, detrend=True, sos=sos,
                                     final_keep=None, q=np.zeros((n, 36)), n_out=n)
        op = signal.CleaningOperator(matrix=np.broadcast_to(0.0, (n, n)), mean_weights=np.zeros(n),
                                     kept=np.arange(n), n_confounds_used=36, steps=steps)
        assert signal.stepwise_is_cheaper(op) is expected, n
