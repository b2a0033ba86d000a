"""Trial labels, segments, FIR bins and run-edge checks decide as exact arithmetic on the decimal text.

Onsets, durations, RepetitionTime and StartTime are written as decimal text (as in events.tsv and the JSON
sidecars); the reference reads that text as fractions (``fractions.Fraction``), so a volume time equal to an
onset, a window's end or a bin's edge in real arithmetic is equal there, whatever float64 makes of
``StartTime + v * TR``. Seeded sweeps over TRs (HCP's 0.72 s among them) and StartTimes 0 and TR / 2, with onsets
locked to volume times and half-way between them.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from bidsapp.core import hrf, trial_models
from bidsapp.core.events import Events, label_rows, segment_trials, volume_times

TRS = ("0.72", "0.7", "0.8", "1.2", "1.5", "2.0", "2.5")
RUNS = [(tr, st) for tr in TRS for st in ("0", str(Decimal(tr) / 2))]


def _ceil(x: Fraction) -> int:
    return math.ceil(x)


def _onsets(rng: np.random.Generator, tr: str, st: str, n: int, n_trials: int) -> list[str]:
    """Decimal text of onsets at volume times (``st + k tr``), half-way between them, or whole seconds."""
    out = []
    for _ in range(n_trials):
        k = Decimal(int(rng.integers(0, n)))
        kind = rng.integers(3)
        value = Decimal(st) + k * Decimal(tr) if kind == 0 else Decimal(st) + (k + Decimal("0.5")) * Decimal(tr)
        out.append(str(value if kind < 2 else Decimal(int(rng.integers(0, int(n * float(tr)))))))
    return out


def _volumes_in(start: Fraction, stop: Fraction, tr: Fraction, st: Fraction, n: int) -> set[int]:
    """Volumes ``v < n`` with ``start <= st + v tr < stop`` (exactly)."""
    return set(range(max(_ceil((start - st) / tr), 0), min(_ceil((stop - st) / tr), n)))


def _labelled(onsets: list[str], durations: list[float], n: int, tr: str, st: str = "0", lag: str = "0") -> list[set]:
    """The volumes :func:`label_rows` gives each trial (``onsets`` as decimal strings)."""
    events = Events(Path("events.tsv"), np.array([float(o) for o in onsets]), np.array(durations, dtype=float),
                    ["a"] * len(onsets))
    trial, _ = label_rows(volume_times(n, float(tr), float(st)), events, float(tr), float(lag))
    return [{v for v in range(n) if trial[v] and str(i) in trial[v].split(",")} for i in range(len(onsets))]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("tr", "st"), RUNS)
def test_labels_equal_exact_arithmetic(tr, st, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(100, 400))
    onsets = _onsets(rng, tr, st, n, 40)
    durations = [str(rng.choice([Decimal(0), Decimal(tr), 2 * Decimal(tr), Decimal(tr) * Decimal("1.5"),
                                 Decimal(int(rng.integers(1, 5000))) / 1000])) for _ in onsets]
    lag = str(rng.choice([Decimal(0), 3 * Decimal(tr), Decimal("2.5")]))
    got = _labelled(onsets, [float(d) for d in durations], n, tr, st, lag)
    F = Fraction
    expected = [_volumes_in(F(o) + F(lag), F(o) + F(lag) + max(F(d), F(tr)), F(tr), F(st), n)
                for o, d in zip(onsets, durations)]
    wrong = [(onsets[i], durations[i], sorted(expected[i]), sorted(got[i])) for i in range(len(onsets))
             if got[i] != expected[i]]
    assert not wrong, f"TR {tr}, StartTime {st}, lag {lag}: (onset, duration, exact, labelled) {wrong[:3]}"


@pytest.mark.parametrize("tr", TRS)
def test_labels_of_onsets_near_ten_thousand_seconds(tr):
    n = math.ceil(10100 / float(tr))
    onsets = [str(Decimal(tr) * k) for k in range(n - 60, n - 5, 3)]
    for o, got in zip(onsets, _labelled(onsets, [2 * float(tr)] * len(onsets), n, tr)):
        k = _ceil(Fraction(o) / Fraction(tr))
        assert got == {k, k + 1}, (tr, o, sorted(got))


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize(("tr", "st"), RUNS)
def test_segments_need_the_volumes_of_exact_arithmetic(tr, st, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(60, 200))
    onsets = _onsets(rng, tr, st, n, 30)
    window = (str(rng.choice([Decimal(0), -2 * Decimal(tr), Decimal("-2")])), str(8 * Decimal(tr)))
    kept = np.flatnonzero(rng.random(n) > 0.2)
    cleaned = np.arange(n, dtype=float)[kept, None]
    seg = segment_trials(cleaned, kept, n, np.array([float(o) for o in onsets]), t_r=float(tr),
                         start_time=float(st), window=(float(window[0]), float(window[1])))
    F = Fraction
    offsets = [F(window[0]) + k * F(tr) for k in range(math.floor((F(window[1]) - F(window[0])) / F(tr)) + 1)]
    assert seg.offsets.size == len(offsets)
    for i, o in enumerate(onsets):
        pos = [(F(o) + off - F(st)) / F(tr) for off in offsets]
        need = [{math.floor(p), _ceil(p)} for p in pos]
        inside = [s for s in need if min(s) >= 0 and max(s) <= n - 1]
        outside = len(inside) < len(need)
        censored = {v for s in inside for v in s if v not in set(kept)}  # samples inside the run only
        assert seg.outside[i] == outside and seg.n_censored[i] == len(censored), (tr, st, o)
        assert seg.valid[i] == (not outside and not censored), (tr, st, o)
        if seg.valid[i]:
            np.testing.assert_allclose(seg.data[i, :, 0], [float(p) for p in pos], rtol=0, atol=1e-3)


def _exact_fir(onsets: list[str], window: tuple[str, str], tr: str, st: str, n: int) -> np.ndarray:
    """FIR indicators in exact arithmetic: volume v in bin k of trial i iff -tr/2 <= t_v - onset_i - off_k < tr/2."""
    F = Fraction
    n_bins = math.floor((F(window[1]) - F(window[0])) / F(tr)) + 1
    out = np.zeros((n, len(onsets), n_bins))
    for i, o in enumerate(onsets):
        for k in range(n_bins):
            centre = F(o) + F(window[0]) + k * F(tr)
            for v in _volumes_in(centre - F(tr) / 2, centre + F(tr) / 2, F(tr), F(st), n):
                out[v, i, k] = 1
    return out


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("tr", "st"), RUNS)
def test_fir_bins_equal_exact_arithmetic(tr, st, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(60, 300))
    onsets = _onsets(rng, tr, st, n, 40)
    window = (str(rng.choice([Decimal(0), Decimal(-2), -Decimal(tr)])),
              str(rng.choice([Decimal(10), 8 * Decimal(tr)])))
    offsets = hrf.fir_offsets((float(window[0]), float(window[1])), float(tr))
    got = hrf.fir_regressors(volume_times(n, float(tr), float(st)), np.array([float(o) for o in onsets]),
                             [np.array([i]) for i in range(len(onsets))], offsets, float(tr))
    expected = _exact_fir(onsets, window, tr, st, n)
    assert got.shape == expected.shape
    wrong = [(onsets[i], got[:, i].sum(axis=0).astype(int).tolist()) for i in range(len(onsets))
             if not np.array_equal(got[:, i], expected[:, i])]
    assert not wrong, f"TR {tr}, StartTime {st}, window {window}: (onset, volumes per bin) {wrong[:3]}"


@pytest.mark.parametrize(("tr", "onsets"), [("0.8", ["2", "10", "18", "26", "34", "42", "50"]),
                                            ("1.2", ["3", "15", "27", "39", "51", "63"]),
                                            ("0.72", ["9", "27", "45"])])
def test_fir_lss_with_onsets_half_way_between_volumes(tr, onsets):
    """Whole-second onsets half-way between volumes: every trial valid, betas those of the exact FIR design."""
    n, window = 90, ("0", "6")
    types = ["face", "house"] * (len(onsets) // 2) + ["face"] * (len(onsets) % 2)
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(n, 4))
    basis = hrf.make_basis("fir", float(tr), window=(0.0, 6.0))
    fit = trial_models.fit_trials("lss", Y, np.eye(n), np.arange(n), np.array([float(o) for o in onsets]),
                                  np.ones(len(onsets)), types, t_r=float(tr), basis=basis)
    assert fit.valid.all(), fit.reason
    X = _exact_fir(onsets, window, tr, "0", n)
    assert (X.sum(axis=0) == 1).all()
    for i in range(len(onsets)):
        others = [X[:, [j for j in range(len(onsets)) if types[j] == t and j != i]].sum(axis=1) for t in set(types)]
        cols = np.column_stack([X[:, i], *others, np.ones(n)])
        cols = cols[:, np.abs(cols).max(axis=0) > 0]
        ref = np.linalg.lstsq(cols, Y, rcond=None)[0][:X.shape[2]]
        np.testing.assert_allclose(fit.coefficients[i], ref, rtol=0, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize(("tr", "st"), RUNS)
def test_run_end_and_trial_spacing_ties(tr, st):
    """A trial at the run's end (a TR after its last volume) does not start after it; TR-spaced trials are not
    'less than a TR apart'; FIR windows that only meet do not overlap."""
    n = 50
    end = Decimal(st) + n * Decimal(tr)
    onsets = np.array([float(end), float(end + Decimal(tr) / 2), float(end - Decimal(tr) / 2)])
    design = trial_models.run_design(np.eye(n), np.arange(n), onsets, np.ones(3), hrf.make_basis("spm", float(tr)),
                                     t_r=float(tr), start_time=float(st))
    assert design.late.tolist() == [False, True, False]
    spaced = np.array([float(Decimal(st) + k * Decimal(tr)) for k in range(2, n, 1)])
    lines = trial_models.check_trial_design("lsa", spaced, np.full(spaced.size, float(tr)),
                                            hrf.make_basis("spm", float(tr)), t_r=float(tr))
    assert not lines, lines
    fir = hrf.make_basis("fir", float(tr), window=(0.0, float(3 * Decimal(tr))))  # 4 bins: a window of 4 TR
    meeting = np.array([float(Decimal(st) + k * Decimal(tr)) for k in range(2, n, 4)])
    lines = trial_models.check_trial_design("lsa", meeting, np.full(meeting.size, float(4 * Decimal(tr))), fir,
                                            t_r=float(tr))
    assert not lines, lines


@pytest.mark.parametrize("model", ["spm", "fir"])
def test_response_retained_grid_spans_the_run(monkeypatch, model):
    """Onsets far outside the run (milliseconds by mistake) are 0 without sampling a grid out to them, and leave
    the shares of the other trials as they are without them."""
    t_r, n = 2.0, 100
    basis = hrf.make_basis(model, t_r, window=(0.0, 16.0))
    inside = np.array([-20.0, 10.0, 50.5, 90.0, 150.0, 196.0, 230.0])
    far = np.array([12790.0, 23790.0, 1e6, -1e6])
    onsets, durations = np.r_[inside, far], np.r_[np.full(inside.size, 2.0), np.full(far.size, 2000.0)]
    kept = np.flatnonzero(np.arange(n) % 7 != 3)
    real = trial_models.trial_regressors

    def bounded(n_volumes, *args, **kwargs):
        assert n_volumes < n + 100, f"grid of {n_volumes} volumes for a run of {n}"
        return real(n_volumes, *args, **kwargs)

    monkeypatch.setattr(trial_models, "trial_regressors", bounded)
    share = trial_models.response_retained(n, kept, onsets, durations, basis, t_r=t_r)
    alone = trial_models.response_retained(n, kept, inside, durations[:inside.size], basis, t_r=t_r)
    assert np.array_equal(share[:inside.size], alone)
    assert (share[inside.size:] == 0).all() and share[inside.size - 1] == 0
    assert (alone[1:5] > 0.5).all()
