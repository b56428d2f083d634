"""Statistics over repeated runs: a configuration's mean, sample std and Student-t interval across its
seeds, and its difference to a baseline (a paired t-test on per-seed differences when both share their
seeds, else Welch's test).

Every probability and quantile is SciPy's Student t distribution (scipy.special.stdtr and stdtrit, the
functions behind scipy.stats.t). The t statistics and Welch's degrees of freedom are the textbook ones
that scipy.stats.ttest_rel and ttest_ind compute, written out here because those functions cost about a
millisecond a call in argument handling: a study page or a leaderboard of a hundred configurations would
spend most of its time there. tests/test_stats.py holds every result to SciPy's own functions.

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


def _t_interval(mean: float, sem: float, df: float) -> tuple[float, float] | None:
    """mean ± t(0.975; df) · sem, as scipy.stats.t.interval(CONFIDENCE, df, loc=mean, scale=sem)."""
    from scipy import special

    half = float(special.stdtrit(df, 1 - ALPHA / 2)) * sem
    return _interval(mean - half, mean + half)


def _two_sided_p(t: float, df: float) -> float | None:
    """P(|T| ≥ |t|) for Student's T with ``df`` degrees of freedom."""
    from scipy import special

    return _finite(2 * special.stdtr(df, -abs(t)))


def _flat(values: Sequence[float]) -> bool:
    # Accuracies are ratios of counts: "equal" values or differences may differ in the last bit, which a
    # t-test would read as a near-zero variance and an absurdly small p-value.
    return max(values) - min(values) <= FLAT


def _variance(values: Sequence[float], mean: float) -> float:
    # Two-pass sample variance (ddof=1), as numpy's var: no cancellation between large sums. Equal values
    # have none at all, whatever the rounding of their mean.
    if _flat(values):
        return 0.0
    return math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)


def summarize(values: Sequence[float]) -> Summary:
    values = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(values)
    if n == 0:
        return Summary(0, None, None, None)
    mean = math.fsum(values) / n
    if n == 1:
        return Summary(1, mean, None, None)
    std = math.sqrt(_variance(values, mean))
    sem = std / math.sqrt(n)
    if sem == 0:
        return Summary(n, mean, std, (mean, mean))
    return Summary(n, mean, std, _t_interval(mean, sem, n - 1))


def difference(values: Mapping[int, float], baseline: Mapping[int, float]) -> Difference | None:
    """``values`` minus ``baseline``, each given as {seed: final accuracy}. None when a side is empty.

    Paired when both sides have exactly the same seeds (and at least two): each seed shares its data
    order and, in a study, its teacher, so the per-seed difference removes that shared noise.
    """
    mine = {seed: float(v) for seed, v in values.items() if v is not None and math.isfinite(v)}
    theirs = {seed: float(v) for seed, v in baseline.items() if v is not None and math.isfinite(v)}
    if not mine or not theirs:
        return None
    a, b = list(mine.values()), list(theirs.values())
    mean_a, mean_b = math.fsum(a) / len(a), math.fsum(b) / len(b)
    mean = mean_a - mean_b
    if set(mine) == set(theirs) and len(mine) >= 2:
        seeds = sorted(mine)
        diffs = [mine[s] - theirs[s] for s in seeds]
        if _flat(diffs):  # no spread: t is undefined
            return Difference(mean, None, None, True, len(seeds), len(seeds))
        # ttest_rel: t = mean(d) / (std(d) / √n), n − 1 degrees of freedom.
        n = len(diffs)
        mean_d = math.fsum(diffs) / n
        sem = math.sqrt(_variance(diffs, mean_d) / n)
        return Difference(mean, _t_interval(mean_d, sem, n - 1), _two_sided_p(mean_d / sem, n - 1), True, n, n)
    if len(a) < 2 or len(b) < 2 or (_flat(a) and _flat(b)):
        return Difference(mean, None, None, False, len(a), len(b))
    # ttest_ind(equal_var=False): Welch's t with the Welch–Satterthwaite degrees of freedom.
    share_a, share_b = _variance(a, mean_a) / len(a), _variance(b, mean_b) / len(b)
    sem = math.sqrt(share_a + share_b)
    df = (share_a + share_b) ** 2 / (share_a ** 2 / (len(a) - 1) + share_b ** 2 / (len(b) - 1))
    return Difference(mean, _t_interval(mean, sem, df), _two_sided_p(mean / sem, df), False, len(a), len(b))
