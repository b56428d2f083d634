"""Statistics over repeated runs: a configuration's mean, sample std and Student-t interval across its
seeds, and its difference to a baseline (a paired t-test on per-seed differences when both share their
seeds, else Welch's test). SciPy computes every quantile, test and interval; nothing here is hand-rolled.

Torch-free: the web process uses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
FLAT = 1e-12


@dataclass(frozen=True)
class Summary:
    """``std`` is the sample std (n − 1); it and ``ci95`` are None below two values."""

    n: int
    mean: float | None
    std: float | None
    ci95: tuple[float, float] | None

    def to_json_dict(self) -> dict:
        return {"n": self.n, "mean": self.mean, "std": self.std, "ci95": list(self.ci95) if self.ci95 else None}


@dataclass(frozen=True)
class Difference:
    """A configuration's mean minus the baseline's, with its interval and two-sided p-value.

    ``paired``: a paired t-test on per-seed differences (``n`` pairs); else Welch's test (``n`` the
    configuration's runs, ``baseline_n`` the baseline's). ``ci95`` and ``p_value`` are None when the data
    cannot give them (fewer than two values a side, or no spread at all).
    """

    mean: float
    ci95: tuple[float, float] | None
    p_value: float | None
    paired: bool
    n: int
    baseline_n: int

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < ALPHA

    def to_json_dict(self) -> dict:
        return {"mean": self.mean, "ci95": list(self.ci95) if self.ci95 else None, "p_value": self.p_value,
                "paired": self.paired, "n": self.n, "baseline_n": self.baseline_n, "significant": self.significant}


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _interval(low: float, high: float) -> tuple[float, float] | None:
    low, high = _finite(low), _finite(high)
    return (low, high) if low is not None and high is not None else None


def _flat(values: Sequence[float]) -> bool:
    # Accuracies are ratios of counts: "equal" differences may differ in the last bit, which a t-test
    # would read as near-zero variance and an absurdly small p-value.
    return max(values) - min(values) <= FLAT


def summarize(values: Sequence[float]) -> Summary:
    from scipy import stats

    values = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(values)
    if n == 0:
        return Summary(0, None, None, None)
    mean = math.fsum(values) / n
    if n == 1:
        return Summary(1, mean, None, None)
    if _flat(values):
        return Summary(n, mean, 0.0, (mean, mean))
    std = float(stats.tstd(values))  # ddof=1
    sem = std / math.sqrt(n)
    if sem == 0:
        return Summary(n, mean, std, (mean, mean))
    return Summary(n, mean, std, _interval(*stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=sem)))


def summarize_moments(n: int, total: float, total_squares: float) -> Summary:
    """The same summary from a count, a sum and a sum of squares (what a database aggregates cheaply).

    The sample variance from sums loses digits only when the spread is tiny against the mean: for
    accuracies in [0, 1] over a few hundred runs, far below anything a table prints.
    """
    from scipy import stats

    if n == 0:
        return Summary(0, None, None, None)
    mean = total / n
    if n == 1:
        return Summary(1, mean, None, None)
    variance = max(0.0, (total_squares - n * mean * mean) / (n - 1))
    std = math.sqrt(variance)
    sem = std / math.sqrt(n)
    if sem == 0:
        return Summary(n, mean, std, (mean, mean))
    return Summary(n, mean, std, _interval(*stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=sem)))


def difference(values: Mapping[int, float], baseline: Mapping[int, float]) -> Difference | None:
    """``values`` minus ``baseline``, each given as {seed: final accuracy}. None when a side is empty.

    Paired when both sides have exactly the same seeds (and at least two): each seed shares its data
    order and, in a study, its teacher, so the per-seed difference removes that shared noise.
    """
    from scipy import stats

    mine = {seed: float(v) for seed, v in values.items() if v is not None and math.isfinite(v)}
    theirs = {seed: float(v) for seed, v in baseline.items() if v is not None and math.isfinite(v)}
    if not mine or not theirs:
        return None
    a, b = list(mine.values()), list(theirs.values())
    mean = math.fsum(a) / len(a) - math.fsum(b) / len(b)
    if set(mine) == set(theirs) and len(mine) >= 2:
        seeds = sorted(mine)
        diffs = [mine[s] - theirs[s] for s in seeds]
        if _flat(diffs):  # no spread: t is undefined
            return Difference(mean, None, None, True, len(seeds), len(seeds))
        result = stats.ttest_rel([mine[s] for s in seeds], [theirs[s] for s in seeds])
        interval = result.confidence_interval(CONFIDENCE)
        return Difference(mean, _interval(interval.low, interval.high), _finite(result.pvalue), True,
                          len(seeds), len(seeds))
    if len(a) < 2 or len(b) < 2 or (_flat(a) and _flat(b)):
        return Difference(mean, None, None, False, len(a), len(b))
    result = stats.ttest_ind(a, b, equal_var=False)
    interval = result.confidence_interval(CONFIDENCE)
    return Difference(mean, _interval(interval.low, interval.high), _finite(result.pvalue), False, len(a), len(b))
