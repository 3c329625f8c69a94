"""Paired bootstrap over questions (Koehn 2004), randomization tests, Holm's adjustment and Fieller's interval, shared
by the report, the gate and the knowledge verdict.

Both runs are resampled with the same question indices, and each resample recomputes the *corpus* metric:
the mean for per-question metrics, exp(sum NLL / sum tokens) for perplexity (never a mean of per-question values).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


Z_95, Z_POWER_80 = 1.959964, 0.841621
DEFAULT_RESAMPLES, DEFAULT_SEED = 10_000, 12345


@dataclass(frozen=True)
class Comparison:
    base: float
    candidate: float
    delta: float  # candidate - base
    low: float  # 95 % interval of the delta
    high: float
    mde: float  # minimum detectable |delta| at this n (80 % power, 5 % two-sided)
    n: int

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


def columns(kind: str, values: list) -> np.ndarray:
    import numpy as np

    if kind == "perplexity":
        return np.asarray(values, dtype=float).reshape(-1, 2)
    return np.asarray(values, dtype=float).reshape(-1, 1)


def statistic(kind: str, weights: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Corpus value for each row of resample weights (counts of each question in the resample)."""
    import numpy as np

    sums = weights @ cols
    if kind == "perplexity":
        return np.exp(sums[:, 0] / sums[:, 1])
    return sums[:, 0] / weights.sum(axis=1)


def resample_weights(n: int, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """(n_resamples, n) counts: how often each question is drawn in each resample. Fixed seed: same inputs, same
    intervals."""
    import numpy as np

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    flat = (np.arange(n_resamples)[:, None] * n + idx).ravel()
    return np.bincount(flat, minlength=n_resamples * n).reshape(n_resamples, n).astype(float)


def paired_bootstrap(kind: str, base: list, candidate: list, n_resamples: int = DEFAULT_RESAMPLES,
                     seed: int = DEFAULT_SEED) -> Comparison:
    """Compare two runs over the same questions (same order). ``kind`` is "mean" or "perplexity"."""
    import numpy as np

    if len(base) != len(candidate) or not base:
        raise ValueError(f"paired bootstrap needs two equal, non-empty lists ({len(base)} vs {len(candidate)})")
    b, c = columns(kind, base), columns(kind, candidate)
    ones = np.ones((1, len(base)))
    point_b, point_c = float(statistic(kind, ones, b)[0]), float(statistic(kind, ones, c)[0])
    weights = resample_weights(len(base), n_resamples, seed)
    deltas = statistic(kind, weights, c) - statistic(kind, weights, b)
    low, high = np.percentile(deltas, [2.5, 97.5])
    return Comparison(
        base=point_b, candidate=point_c, delta=point_c - point_b, low=float(low), high=float(high),
        mde=float((Z_95 + Z_POWER_80) * deltas.std(ddof=1)), n=len(base),
    )


# ------------------------------------------------------------------------------------ randomization tests (verdict)
#
# The seen/unseen assignment is randomized (a hash of each question's id), so under "training did not act on the
# seen group in particular" the group labels of the per-question (base, model) pairs are exchangeable: permuting
# them gives an exact test at any n. Likewise, under "the model is no different from the base on these questions"
# each question's (base, model) pair is exchangeable within itself: swapping them gives an exact test of a gain.
# Both enumerate every arrangement when there are at most `n_permutations` of them, else draw that many at random
# (seeded; the p-value then counts the observed arrangement too, which keeps it valid).

DEFAULT_PERMUTATIONS = 10_000


def _value(kind: str, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    import numpy as np

    if kind == "perplexity":
        return np.exp(sums[:, 0] / sums[:, 1])
    return sums[:, 0] / counts


def _masks(n: int, k: int | None, n_permutations: int, seed: int) -> tuple[np.ndarray, bool]:
    """(rows of 0/1 masks, exact): with ``k``, masks with k ones (which questions are "seen"); without, any 0/1
    mask (which pairs are swapped). Every mask when there are at most n_permutations, else random ones."""
    import itertools

    import numpy as np

    total = math.comb(n, k) if k is not None else 2 ** n
    if total <= n_permutations:
        if k is not None:
            rows = np.zeros((total, n))
            for r, chosen in enumerate(itertools.combinations(range(n), k)):
                rows[r, list(chosen)] = 1
        else:
            rows = ((np.arange(total)[:, None] >> np.arange(n)) & 1).astype(float)
        return rows, True
    rng = np.random.default_rng(seed)
    if k is not None:
        order = np.argsort(rng.random((n_permutations, n)), axis=1)
        rows = (order < k).astype(float)
    else:
        rows = rng.integers(0, 2, size=(n_permutations, n)).astype(float)
    return rows, False


def _p_values(observed: float, null: np.ndarray, exact: bool) -> tuple[float, float]:
    """One-sided p-values (effect > 0, effect < 0) of the observed statistic against its randomization null."""
    tol = 1e-12 * max(1.0, abs(observed))
    greater, less = int((null >= observed - tol).sum()), int((null <= observed + tol).sum())
    if exact:  # the observed arrangement is one of the enumerated ones
        return greater / null.size, less / null.size
    return (greater + 1) / (null.size + 1), (less + 1) / (null.size + 1)


@dataclass(frozen=True)
class Randomization:
    observed: float
    p_greater: float  # one-sided: the effect is > 0
    p_less: float
    exact: bool

    @property
    def p_two_sided(self) -> float:
        return min(1.0, 2 * min(self.p_greater, self.p_less))


def randomization_did(kind: str, base_seen: list, model_seen: list, base_unseen: list, model_unseen: list,
                      n_permutations: int = DEFAULT_PERMUTATIONS, seed: int = DEFAULT_SEED) -> Randomization:
    """Permutation test of (model - base on seen) - (model - base on unseen): the group labels of the questions
    are permuted, each question keeping its (base, model) pair; corpus metrics are recomputed per arrangement."""
    import numpy as np

    b, m = columns(kind, list(base_seen) + list(base_unseen)), columns(kind, list(model_seen) + list(model_unseen))
    n, k = len(b), len(base_seen)

    def stat(seen_mask):
        unseen_mask, ones = 1 - seen_mask, seen_mask.sum(axis=1)
        return ((_value(kind, seen_mask @ m, ones) - _value(kind, seen_mask @ b, ones))
                - (_value(kind, unseen_mask @ m, n - ones) - _value(kind, unseen_mask @ b, n - ones)))

    actual = np.zeros((1, n))
    actual[0, :k] = 1
    observed = float(stat(actual)[0])
    masks, exact = _masks(n, k, n_permutations, seed)
    return Randomization(observed, *_p_values(observed, stat(masks), exact), exact)


def sign_flip(kind: str, base: list, model: list, n_permutations: int = DEFAULT_PERMUTATIONS,
              seed: int = DEFAULT_SEED) -> Randomization:
    """Randomization test of a gain (model - base) over the same questions: each question's pair is swapped or not."""
    import numpy as np

    b, m = columns(kind, base), columns(kind, model)
    n = len(b)

    def stat(swap):
        keep, ones = 1 - swap, np.full(swap.shape[0], n)
        return _value(kind, keep @ m + swap @ b, ones) - _value(kind, keep @ b + swap @ m, ones)

    observed = float(stat(np.zeros((1, n)))[0])
    masks, exact = _masks(n, None, n_permutations, seed)
    return Randomization(observed, *_p_values(observed, stat(masks), exact), exact)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: adjusted p-values that control the family-wise error rate (in input order)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Ratio:
    value: float
    low: float
    high: float
    reason: str = ""  # why there is no interval (value and bounds are then nan)


def fieller(numerator: list[float], denominator: list[float], confidence: float = 0.95) -> Ratio:
    """Fieller's interval for mean(numerator) / mean(denominator), both per question over the same questions
    (paired: their covariance counts). Bounded only when the denominator's own interval excludes 0; otherwise no
    ratio is reported, with the reason, instead of an interval built from the resamples that happen to work."""
    import numpy as np
    from scipy.stats import t as student_t

    x, y = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    n = len(x)
    nan = float("nan")
    if n < 3:
        return Ratio(nan, nan, nan, f"{n} question(s): too few for an interval")
    q = float(student_t.ppf(0.5 + confidence / 2, n - 1))
    mx, my = x.mean(), y.mean()
    cov = np.cov(x, y, ddof=1) / n
    v11, v22, v12 = cov[0, 0], cov[1, 1], cov[0, 1]
    if my <= 0 or my * my <= q * q * v22:
        return Ratio(nan, nan, nan, f"the denominator's {confidence:.0%} interval [{my - q * v22 ** 0.5:+.3f}, "
                                    f"{my + q * v22 ** 0.5:+.3f}] is not above 0")
    a, b, c = my * my - q * q * v22, mx * my - q * q * v12, mx * mx - q * q * v11
    root = max(b * b - a * c, 0.0) ** 0.5
    return Ratio(float(mx / my), float((b - root) / a), float((b + root) / a))
