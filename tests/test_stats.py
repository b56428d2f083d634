"""kdcore.studies.stats against SciPy and NumPy computed independently here, including the edge cases a study meets
(one seed, identical values, seeds that differ between the sides)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from kdcore.studies.stats import difference, summarize


def _t_interval(values):
    values = np.asarray(values, dtype=float)
    n = len(values)
    half = sp.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n)
    return values.mean() - half, values.mean() + half


@pytest.mark.parametrize("values", [[0.61, 0.64, 0.59], [0.5, 0.52], [0.7, 0.71, 0.69, 0.72, 0.68]])
def test_summary_is_mean_sample_std_and_student_t_interval(values):
    summary = summarize(values)
    assert summary.n == len(values)
    assert summary.mean == pytest.approx(np.mean(values), abs=1e-12)
    assert summary.std == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    low, high = _t_interval(values)
    assert summary.ci95 == pytest.approx((low, high), abs=1e-12)


def test_one_value_has_no_spread_and_none_is_empty():
    assert summarize([0.5]).to_json_dict() == {"n": 1, "mean": 0.5, "std": None, "ci95": None}
    assert summarize([]).to_json_dict() == {"n": 0, "mean": None, "std": None, "ci95": None}
    assert summarize([float("nan"), 0.5]).n == 1  # a diverged run has no accuracy to average


def test_identical_values_have_a_zero_width_interval():
    summary = summarize([0.5, 0.5, 0.5])
    assert summary.std == 0 and summary.ci95 == (0.5, 0.5)


def test_same_seeds_are_compared_pairwise():
    kd = {1: 0.612, 2: 0.641, 3: 0.603}
    student = {1: 0.598, 2: 0.622, 3: 0.601}
    diff = difference(kd, student)
    per_seed = np.array([kd[s] - student[s] for s in (1, 2, 3)])
    expected = sp.ttest_rel([kd[s] for s in (1, 2, 3)], [student[s] for s in (1, 2, 3)])
    assert diff.paired and diff.n == 3
    assert diff.mean == pytest.approx(per_seed.mean(), abs=1e-12)
    assert diff.p_value == pytest.approx(expected.pvalue, abs=1e-12)
    assert diff.ci95 == pytest.approx(_t_interval(per_seed), abs=1e-12)
    assert diff.significant == (expected.pvalue < 0.05)


def test_pairs_follow_the_seeds_not_the_order_given():
    kd = {3: 0.70, 1: 0.60, 2: 0.65}
    student = {1: 0.58, 2: 0.60, 3: 0.69}
    expected = sp.ttest_rel([0.60, 0.65, 0.70], [0.58, 0.60, 0.69])
    assert difference(kd, student).p_value == pytest.approx(expected.pvalue, abs=1e-12)


def test_different_seeds_use_welchs_test():
    a = {1: 0.61, 2: 0.64, 3: 0.60, 4: 0.63}
    b = {5: 0.58, 6: 0.57, 7: 0.60}
    diff = difference(a, b)
    expected = sp.ttest_ind(list(a.values()), list(b.values()), equal_var=False)
    interval = expected.confidence_interval(0.95)
    assert not diff.paired and (diff.n, diff.baseline_n) == (4, 3)
    assert diff.mean == pytest.approx(np.mean(list(a.values())) - np.mean(list(b.values())), abs=1e-12)
    assert diff.p_value == pytest.approx(expected.pvalue, abs=1e-12)
    assert diff.ci95 == pytest.approx((interval.low, interval.high), abs=1e-12)


def test_a_clear_difference_is_significant_and_noise_is_not():
    assert difference({1: 0.70, 2: 0.71, 3: 0.72}, {1: 0.60, 2: 0.615, 3: 0.62}).significant
    assert not difference({1: 0.60, 2: 0.64, 3: 0.59}, {1: 0.61, 2: 0.62, 3: 0.60}).significant


def test_too_little_data_gives_a_difference_without_a_test():
    single = difference({1: 0.7}, {1: 0.6})
    assert single.mean == pytest.approx(0.1) and single.p_value is None and single.ci95 is None
    assert not single.significant
    constant = difference({1: 0.7, 2: 0.8}, {1: 0.6, 2: 0.7})  # every seed differs by exactly 0.1
    assert constant.paired and constant.p_value is None
    assert difference({}, {1: 0.6}) is None
