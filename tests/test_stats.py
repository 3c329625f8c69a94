"""harness_ext.stats against independent computations: published reference values and a direct bootstrap."""

import math

import numpy as np
import pytest

from harness_ext import stats


def test_holm_matches_a_published_example():
    # Holm (1979) step-down on four p-values; the adjusted values as R's p.adjust(method = "holm") gives them
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1, monotone


def test_fieller_reduces_to_the_t_interval_when_the_denominator_is_exact():
    """With a denominator that does not vary, Fieller's interval is the numerator's t interval divided by it."""
    from scipy.stats import t as student_t

    x = [0.3, 0.8, -0.1, 0.5, 0.9, 0.2, 0.4]
    y = [2.0] * len(x)
    half = student_t.ppf(0.975, len(x) - 1) * np.std(x, ddof=1) / math.sqrt(len(x))
    ratio = stats.fieller(x, y)
    assert ratio.value == pytest.approx(np.mean(x) / 2)
    assert (ratio.low, ratio.high) == pytest.approx(((np.mean(x) - half) / 2, (np.mean(x) + half) / 2))
    assert math.isnan(stats.fieller(x, [0.1, -0.1] * 3 + [0.0]).value)  # a denominator that may be 0: no ratio


def test_paired_bootstrap_is_the_percentile_interval_of_resampled_deltas():
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.2, 30).tolist()
    cand = (np.array(base) + rng.normal(0.05, 0.1, 30)).tolist()
    cmp = stats.paired_bootstrap("mean", base, cand, n_resamples=2000, seed=7)
    draws = np.random.default_rng(7).integers(0, 30, size=(2000, 30))
    deltas = [np.mean(np.array(cand)[d]) - np.mean(np.array(base)[d]) for d in draws]
    assert (cmp.low, cmp.high) == pytest.approx(tuple(np.percentile(deltas, [2.5, 97.5])))
    assert cmp.delta == pytest.approx(np.mean(cand) - np.mean(base))
