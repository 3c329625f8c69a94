"""harness_ext.randomization against independent computations: brute-force enumerations written here from the
definitions, and the duality between each test and the interval printed beside it."""

import itertools
import math
import random

import numpy as np
import pytest

from harness_ext import randomization


def _welch_did(seen: list[float], unseen: list[float]) -> float:
    """(mean seen - mean unseen) / sqrt(var_s / n_s + var_u / n_u): the studentized diff-in-diff, by definition."""
    ms, mu = np.mean(seen), np.mean(unseen)
    se = math.sqrt(np.var(seen, ddof=1) / len(seen) + np.var(unseen, ddof=1) / len(unseen))
    return (ms - mu) / se


def _changes(rng: random.Random, n: int, shift: float = 0.0) -> tuple[list[float], list[float]]:
    base = [rng.gauss(0, 1) for _ in range(n)]
    return base, [b + shift + rng.expovariate(1.0) - 1.0 for b in base]  # skewed changes


def test_randomization_did_is_the_exact_permutation_test_of_the_welch_statistic():
    rng = random.Random(3)
    bs, ms = _changes(rng, 5, shift=0.8)
    bu, mu = _changes(rng, 6)
    d = [m - b for b, m in zip(bs + bu, ms + mu)]
    observed = _welch_did(d[:5], d[5:])
    null = [_welch_did([d[i] for i in seen], [d[i] for i in range(11) if i not in seen])
            for seen in itertools.combinations(range(11), 5)]  # all 462 labellings, the observed one among them
    greater = sum(v >= observed - 1e-12 for v in null) / len(null)
    less = sum(v <= observed + 1e-12 for v in null) / len(null)
    result = randomization.randomization_did("mean", bs, ms, bu, mu)
    assert result.exact
    assert result.observed == pytest.approx(np.mean(d[:5]) - np.mean(d[5:]))
    assert result.p_greater == pytest.approx(greater, abs=1e-9) and result.p_less == pytest.approx(less, abs=1e-9)


def test_sign_flip_is_the_exact_test_of_halls_statistic_over_every_sign_pattern():
    rng = random.Random(5)
    base, model = _changes(rng, 9, shift=0.6)
    d = np.subtract(model, base)

    def hall(x):
        n, mean, sd = len(x), x.mean(), x.std(ddof=1)
        g = np.mean((x - mean) ** 3) / sd ** 3  # the skewness as randomization._hall computes it (n in the mean, sd ddof=1)
        s = mean / sd
        return math.sqrt(n) * (s + g * s * s / 3 + g * g * s ** 3 / 27 + g / (6 * n))

    observed = hall(d)
    null = [hall(d * np.array(signs)) for signs in itertools.product((1, -1), repeat=9)]  # 512 patterns
    greater = sum(v >= observed - 1e-12 for v in null) / len(null)
    result = randomization.sign_flip("mean", base, model)
    assert result.exact and result.observed == pytest.approx(d.mean())
    assert result.p_greater == pytest.approx(greater, abs=1e-9)


@pytest.mark.parametrize("test", ["did", "gain"])
def test_each_interval_holds_exactly_the_values_its_test_does_not_reject(test):
    """Lowering the seen group's changes (every change) by a bound puts its one-sided p-value at 0.025: the
    interval is the inverted test, computed again here from the shifted data."""
    rng = random.Random(11)
    bs, ms = _changes(rng, 12, shift=0.7)
    bu, mu = _changes(rng, 12)
    if test == "did":
        run = lambda shift: randomization.randomization_did("mean", bs, [m - shift for m in ms], bu, mu, n_permutations=4000)
    else:
        run = lambda shift: randomization.sign_flip("mean", bs, [m - shift for m in ms], n_permutations=4000)
    result = run(0.0)
    width = result.high - result.low
    assert result.low < result.observed < result.high
    inside, outside = 0.002 * width, 0.02 * width
    assert run(result.low - outside).p_greater < 0.025 <= run(result.low + inside).p_greater
    assert run(result.high + outside).p_less < 0.025 <= run(result.high - inside).p_less
