"""kdcore.figures: the figures the CLI, the worker and the dashboard each show the same way."""

from __future__ import annotations

import math

import pytest

from kdcore.figures import compression, finite_or_none, fraction_done


def test_finite_or_none_keeps_numbers_and_drops_what_json_cannot_hold():
    assert finite_or_none(0.25) == 0.25 and finite_or_none(3) == 3.0
    assert [finite_or_none(v) for v in (math.nan, math.inf, -math.inf, None, "1")] == [None] * 5


def test_compression_needs_both_parameter_counts():
    assert compression(1_000_000, 250_000) == 4.0
    assert compression(None, 250_000) is None and compression(1_000_000, None) is None
    assert compression(0, 250_000) is None and compression(1_000_000, 0) is None


def test_fraction_done_within_and_at_the_end_of_an_epoch():
    assert fraction_done(2, 4) == 0.5  # epoch 2 of 4 stored
    assert fraction_done(2, 4, step=5, steps=10) == pytest.approx(0.375)
    assert fraction_done(1, 4, step=0, steps=0) == 0.0  # before the first step report knows the count
