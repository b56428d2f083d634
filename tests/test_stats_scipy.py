"""kdcore.studies.stats against SciPy's own functions: summaries (tstd, t.interval), the paired t-test
(ttest_rel) and Welch's test (ttest_ind, equal_var=False), on random samples and on the edge cases."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import stats

from kdcore.studies.stats import difference, summarize

TOLERANCE = 1e-12


def samples(seed: int, count: int = 300):
    rng = random.Random(seed)
    for _ in range(count):
        n, m = rng.randint(2, 12), rng.randint(2, 12)
        spread = rng.choice([0.001, 0.01, 0.05])
        yield ({i: rng.gauss(0.6, spread) for i in range(n)}, {i: rng.gauss(0.59, spread) for i in range(n)},
               {100 + i: rng.gauss(0.58, rng.choice([0.002, 0.02])) for i in range(m)})


def test_summaries_equal_scipys():
    for mine, _, _ in samples(1):
        values = list(mine.values())
        summary = summarize(values)
        low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
        assert summary.n == len(values)
        assert summary.mean == pytest.approx(np.mean(values), abs=TOLERANCE)
        assert summary.std == pytest.approx(stats.tstd(values), abs=TOLERANCE)
        assert summary.ci95 == pytest.approx((low, high), abs=TOLERANCE)


def test_paired_difference_equals_ttest_rel():
    for mine, theirs, _ in samples(2):
        diff = difference(mine, theirs)
        expected = stats.ttest_rel(list(mine.values()), list(theirs.values()))
        interval = expected.confidence_interval(0.95)
        assert diff.paired and diff.n == len(mine)
        assert diff.p_value == pytest.approx(expected.pvalue, abs=TOLERANCE)
        assert diff.ci95 == pytest.approx((interval.low, interval.high), abs=TOLERANCE)
        assert diff.significant == (expected.pvalue < 0.05)


def test_welch_difference_equals_ttest_ind():
    for mine, _, other in samples(3):
        diff = difference(mine, other)
        expected = stats.ttest_ind(list(mine.values()), list(other.values()), equal_var=False)
        interval = expected.confidence_interval(0.95)
        assert not diff.paired and (diff.n, diff.baseline_n) == (len(mine), len(other))
        assert diff.mean == pytest.approx(np.mean(list(mine.values())) - np.mean(list(other.values())), abs=TOLERANCE)
        assert diff.p_value == pytest.approx(expected.pvalue, abs=TOLERANCE)
        assert diff.ci95 == pytest.approx((interval.low, interval.high), abs=TOLERANCE)


def test_edge_cases():
    assert summarize([]).mean is None
    one = summarize([0.7])
    assert (one.n, one.mean, one.std, one.ci95) == (1, 0.7, None, None)
    flat = summarize([0.7, 0.7, 0.7])
    assert flat.std == 0 and flat.ci95 == (flat.mean, flat.mean) and flat.mean == pytest.approx(0.7)
    assert summarize([0.5, float("nan"), None, 0.7]).n == 2
    assert difference({}, {1: 0.5}) is None
    # One value a side: a difference, nothing to test.
    single = difference({1: 0.8}, {1: 0.7})
    assert single.mean == pytest.approx(0.1) and single.p_value is None and not single.significant
    # The same gain on every seed: no spread, so no t statistic (SciPy gives NaN).
    constant = difference({1: 0.75, 2: 0.5}, {1: 0.5, 2: 0.25})
    assert constant.paired and constant.p_value is None and constant.ci95 is None
    # One side without spread, the other with: Welch's test still applies.
    half = difference({1: 0.8, 2: 0.8, 3: 0.8}, {7: 0.7, 8: 0.72, 9: 0.69})
    expected = stats.ttest_ind([0.8] * 3, [0.7, 0.72, 0.69], equal_var=False)
    assert half.p_value == pytest.approx(expected.pvalue, abs=TOLERANCE)
