"""Paired bootstrap over questions (Koehn 2004), randomization tests, Holm's adjustment and Fieller's interval, shared
by the report, the gate and the knowledge verdict.

Both runs are resampled with the same question indices, and each resample recomputes the *corpus* metric:
the mean for per-question metrics, exp(sum NLL / sum tokens) for perplexity (never a mean of per-question values).

Over 350 lines: the randomization tests, their studentized statistics and the inversion into intervals must share
one set of masks and moments, or an interval could disagree with the p-value printed beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache


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


# ------------------------------------------------------------------------ studentized randomization tests (verdict)
#
# The seen/unseen assignment is randomized (a hash of each question's id), so under "training did not act on the
# seen group in particular" the group labels of the per-question (base, model) pairs are exchangeable: permuting
# them tests the diff-in-diff. Under "the model is no different from the base on these questions" each question's
# (base, model) pair is exchangeable within itself: swapping them (a sign flip of the change) tests a gain. Both
# enumerate every arrangement when there are at most `n_permutations` of them, else draw that many at random
# (seeded; the p-value then counts the observed arrangement too, which keeps it valid).
#
# Both statistics are *studentized*: the diff-in-diff over its Welch standard error, the gain over its own. A raw
# difference of means is exact only when the two groups' changes have the same distribution; with unequal spreads
# and unequal group sizes it is not, and its permutation test over-rejects (12 + 28 questions: 5.85 % false
# "learned"). The studentized statistic is exact under exchangeability and keeps its level asymptotically when only
# the means are equal (Janssen 1997; Chung and Romano 2013); bench/verdict_null.py measures it on the designs the
# README lists. Corpus perplexity is studentized by its linearization (the ratio estimator's influence values).
#
# Intervals invert the same tests: the diff-in-diff (gain) values not rejected at 2.5 % on either side, found by
# bisection over a shift of the seen group's changes (of every change), so an interval lies above 0 exactly when
# the one-sided p-value beside it is below 0.025. Perplexity has no per-question shift; its intervals stay the
# percentile bootstrap (``paired_bootstrap``), and its rows are exploratory only.

DEFAULT_PERMUTATIONS = 10_000
_TINY = 1e-30  # added to a variance: a change that is the same for every question has a finite, huge statistic


def _gain_columns(kind: str, base: list, model: list) -> np.ndarray:
    """Per-question columns whose sums give a gain (model - base) and its variance (``_gain_moments``)."""
    import numpy as np

    b, m = columns(kind, base), columns(kind, model)
    if kind == "perplexity":
        a, c, e, f = m[:, 0], m[:, 1], b[:, 0], b[:, 1]
        return np.stack([a, c, e, f, a * a, a * c, c * c, e * e, e * f, f * f, a * e, a * f, c * e, c * f], axis=1)
    d = m[:, 0] - b[:, 0]
    return np.stack([d, d * d], axis=1)


def _gain_moments(kind: str, sums: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gain, variance of the gain) of each row of column sums over ``k`` questions. Perplexity: exp(NLL / tokens)
    of the model minus the base's, its variance from the influence values of the two ratio estimators."""
    import numpy as np

    denominator = np.maximum(k * (k - 1), 1)
    if kind == "perplexity":
        a, c, e, f, aa, ac, cc, ee, ef, ff, ae, af, ce, cf = sums.T
        rm, rb = a / c, e / f
        pm, pb = np.exp(rm), np.exp(rb)
        x, y = pm * k / c, pb * k / f  # d ppl / d (per-question NLL - ratio x tokens), times k
        squares = (x * x * (aa - 2 * rm * ac + rm * rm * cc) + y * y * (ee - 2 * rb * ef + rb * rb * ff)
                   - 2 * x * y * (ae - rb * af - rm * ce + rm * rb * cf))
        return pm - pb, np.maximum(squares, 0) / denominator
    mean = sums[:, 0] / k
    return mean, np.maximum(sums[:, 1] - k * mean * mean, 0) / denominator


@lru_cache(maxsize=32)
def _masks(n: int, k: int | None, n_permutations: int, seed: int) -> tuple[np.ndarray, bool]:
    """(rows of 0/1 masks, exact): with ``k``, masks with k ones (which questions are "seen"); without, any 0/1
    mask (which pairs are swapped). Every mask when there are at most n_permutations, else random ones. Cached:
    the same design and seed draw the same masks (callers never write to them)."""
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
        rows.setflags(write=False)
        return rows, True
    rng = np.random.default_rng(seed)
    if k is not None:
        order = np.argsort(rng.random((n_permutations, n)), axis=1)
        rows = (order < k).astype(float)
    else:
        rows = rng.integers(0, 2, size=(n_permutations, n)).astype(float)
    rows.setflags(write=False)
    return rows, False


def _p_values(observed: float, null: np.ndarray, exact: bool) -> tuple[float, float]:
    """One-sided p-values (effect > 0, effect < 0) of the observed statistic against its randomization null."""
    tol = 1e-10 * max(1.0, abs(observed))
    greater, less = int((null >= observed - tol).sum()), int((null <= observed + tol).sum())
    if exact:  # the observed arrangement is one of the enumerated ones
        return greater / null.size, less / null.size
    return (greater + 1) / (null.size + 1), (less + 1) / (null.size + 1)


@dataclass(frozen=True)
class Randomization:
    observed: float  # the effect itself (a diff-in-diff or a gain), not its studentized statistic
    p_greater: float  # one-sided: the effect is > 0
    p_less: float
    exact: bool
    low: float = float("nan")  # 95 % interval by inverting the test (nan: perplexity, see above)
    high: float = float("nan")

    @property
    def p_two_sided(self) -> float:
        return min(1.0, 2 * min(self.p_greater, self.p_less))


def _invert(p_at, estimate: float, scale: float, alpha: float = 0.05) -> tuple[float, float]:
    """The shifts not rejected at alpha / 2 on either side: ``p_at(shift)`` -> (p_greater, p_less) of the test of
    "the effect equals shift"; p_greater grows with the shift, p_less falls. Bisection to 1e-4 of ``scale``."""
    level, width0 = alpha / 2, scale if scale > 0 else 1.0

    def bound(side: int) -> float:  # side +1: the lower bound (p_greater), -1: the upper (p_less)
        which, inside, width = (0 if side > 0 else 1), estimate, width0
        for _ in range(60):  # widen until the far end is rejected
            outside = estimate - side * width
            if p_at(outside)[which] < level:
                break
            inside, width = outside, width * 2
        else:
            return -side * math.inf
        while abs(inside - outside) > 1e-4 * width0:
            middle = (inside + outside) / 2
            if p_at(middle)[which] < level:
                outside = middle
            else:
                inside = middle
        return inside

    return bound(1), bound(-1)


def randomization_did(kind: str, base_seen: list, model_seen: list, base_unseen: list, model_unseen: list,
                      n_permutations: int = DEFAULT_PERMUTATIONS, seed: int = DEFAULT_SEED,
                      studentized: bool = True) -> Randomization:
    """Permutation test of (model - base on seen) - (model - base on unseen): the group labels of the questions are
    permuted, each question keeping its (base, model) pair; the Welch-studentized difference is recomputed per
    arrangement (``studentized`` False: the raw difference, kept to measure what studentizing buys). With a mean
    metric, the 95 % interval inverts the test."""
    import numpy as np

    cols = np.concatenate([_gain_columns(kind, base_seen, model_seen), _gain_columns(kind, base_unseen, model_unseen)])
    n, k = cols.shape[0], len(base_seen)
    if kind != "perplexity" and np.ptp(cols[:, 0]) <= 1e-9 * (1 + np.abs(cols[:, 0]).max()):
        # every question changed by the same amount: seen minus unseen is 0, and no arrangement says otherwise (the
        # studentized statistic would only rank rounding noise)
        return Randomization(0.0, 1.0, 1.0, True, 0.0, 0.0)
    actual = np.zeros((1, n))
    actual[0, :k] = 1
    masks, exact = _masks(n, k, n_permutations, seed)
    masks = np.concatenate([actual, masks])  # row 0: the observed arrangement
    k_seen = masks.sum(axis=1)
    seen_sums, total = masks @ cols, cols.sum(axis=0)

    def stat(seen: np.ndarray, unseen: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(statistic, diff-in-diff, its variance) of each arrangement."""
        g_s, v_s = _gain_moments(kind, seen, k_seen)
        g_u, v_u = _gain_moments(kind, unseen, n - k_seen)
        did, var = g_s - g_u, v_s + v_u
        return (did / np.sqrt(var + _TINY) if studentized else did), did, var

    values, dids, variances = stat(seen_sums, total - seen_sums)
    effect, se = float(dids[0]), float(np.sqrt(variances[0]))
    p = _p_values(float(values[0]), values[1:], exact)
    if kind == "perplexity":
        return Randomization(effect, *p, exact)
    # the test of "diff-in-diff = shift": the seen group's changes lowered by the shift
    d, o = cols[:, 0], actual[0]
    m_d, m_dd, m_o, m_do = masks @ d, masks @ (d * d), masks @ o, masks @ (d * o)
    t_d, t_dd, t_o, t_do = d.sum(), (d * d).sum(), o.sum(), (d * o).sum()

    def p_at(shift: float) -> tuple[float, float]:
        s1, s2 = m_d - shift * m_o, m_dd - 2 * shift * m_do + shift * shift * m_o
        u1, u2 = (t_d - shift * t_o) - s1, (t_dd - 2 * shift * t_do + shift * shift * t_o) - s2
        values = stat(np.stack([s1, s2], axis=1), np.stack([u1, u2], axis=1))[0]
        return _p_values(float(values[0]), values[1:], exact)

    return Randomization(effect, *p, exact, *_invert(p_at, effect, 4 * se))


def _hall(s1: np.ndarray, s2: np.ndarray, s3: np.ndarray, n: int) -> np.ndarray:
    """Hall's (1992) skewness-corrected studentized mean from the sums of d, d^2 and d^3 over n changes:
    sqrt(n) (S + g S^2 / 3 + g^2 S^3 / 27 + g / (6 n)), S = mean / sd, g the sample skewness. Monotone in S; its
    one-sided error is O(1/n) instead of the t statistic's O(1/sqrt(n)) when the changes are skewed."""
    import numpy as np

    mean = s1 / n
    square = mean * mean
    var = np.maximum(s2 - n * square, 0) / max(n - 1, 1) + _TINY
    sd = np.sqrt(var)
    g = (s3 - 3 * mean * s2 + 3 * square * s1 - n * square * mean) / (n * var * sd)
    ratio = mean / sd
    ratio2 = ratio * ratio
    return math.sqrt(n) * (ratio + g * ratio2 / 3 + g * g * ratio2 * ratio / 27 + g / (6 * n))


def sign_flip(kind: str, base: list, model: list, n_permutations: int = DEFAULT_PERMUTATIONS,
              seed: int = DEFAULT_SEED, studentized: bool = True) -> Randomization:
    """Randomization test of a gain (model - base) over the same questions: each question's pair is swapped or not
    (a sign flip of its change). The statistic, recomputed per arrangement: for a mean metric Hall's skewness-
    corrected studentized mean (``_hall``: a mean gain of 0 made of many small gains and a few large losses is
    rejected far less often than by the plain studentized mean, bench/verdict_null.py), for perplexity the
    linearized studentized gain; ``studentized`` False: the raw gain. With a mean metric, the 95 % interval inverts
    the test."""
    import numpy as np

    n = len(base)
    direct = _gain_columns(kind, base, model)
    masks, exact = _masks(n, None, n_permutations, seed)
    masks = np.concatenate([np.zeros((1, n)), masks])  # row 0: nothing swapped, the observed arrangement
    k = np.full(masks.shape[0], float(n))
    gain, var = _gain_moments(kind, direct.sum(axis=0)[None, :], k[:1])
    effect, se = float(gain[0]), float(np.sqrt(var[0]))
    if kind == "perplexity":
        sums = (1 - masks) @ direct + masks @ _gain_columns(kind, model, base)
        gain, var = _gain_moments(kind, sums, k)
        values = gain / np.sqrt(var + _TINY) if studentized else gain
        return Randomization(effect, *_p_values(float(values[0]), values[1:], exact), exact)
    d = direct[:, 0]
    signs = 1 - 2 * masks
    by_power = signs @ np.stack([np.ones(n), d, d * d, d ** 3], axis=1)  # sums of s, s d, s d^2, s d^3 per row
    plain = [float(np.sum(d ** p)) for p in range(4)]  # n, sum d, sum d^2, sum d^3

    def p_at(shift: float) -> tuple[float, float]:  # the test of "gain = shift": every change lowered by it
        s1 = by_power[:, 1] - shift * by_power[:, 0]
        if not studentized:
            values = s1
        else:
            s2 = plain[2] - 2 * shift * plain[1] + n * shift * shift  # the same for every row: (s d)^2 = d^2
            s3 = by_power[:, 3] - 3 * shift * by_power[:, 2] + 3 * shift * shift * by_power[:, 1] \
                - shift ** 3 * by_power[:, 0]
            values = _hall(s1, np.full_like(s1, s2), s3, n)
        return _p_values(float(values[0]), values[1:], exact)

    return Randomization(effect, *p_at(0.0), exact, *_invert(p_at, effect, 4 * se))


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


def fieller(numerator: list[float], denominator: list[float], confidence: float = 0.95,
            minus: list[float] | None = None) -> Ratio:
    """Fieller's interval for mean(numerator) / mean(denominator), both per question over the same questions
    (paired: their covariance counts); ``minus``: per-question values of another, independent group whose mean is
    subtracted from the numerator's (a diff-in-diff over a gap; Student's t on the smaller group's degrees of
    freedom). Bounded only when the denominator's own interval excludes 0; otherwise no ratio is reported, with the
    reason, instead of an interval built from the resamples that happen to work."""
    import numpy as np
    from scipy.stats import t as student_t

    x, y = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    z = np.asarray(minus if minus is not None else [], dtype=float)
    n = len(x)
    nan = float("nan")
    if n < 3 or (minus is not None and len(z) < 3):
        return Ratio(nan, nan, nan, f"{min(n, len(z)) if minus is not None else n} question(s): too few for an "
                                    f"interval")
    df = min(n, len(z)) - 1 if minus is not None else n - 1
    q = float(student_t.ppf(0.5 + confidence / 2, df))
    mx, my = x.mean() - (z.mean() if minus is not None else 0.0), y.mean()
    cov = np.cov(x, y, ddof=1) / n
    v11, v22, v12 = cov[0, 0] + (z.var(ddof=1) / len(z) if minus is not None else 0.0), cov[1, 1], cov[0, 1]
    if my <= 0 or my * my <= q * q * v22:
        return Ratio(nan, nan, nan, f"the denominator's {confidence:.0%} interval [{my - q * v22 ** 0.5:+.3f}, "
                                    f"{my + q * v22 ** 0.5:+.3f}] is not above 0")
    a, b, c = my * my - q * q * v22, mx * my - q * q * v12, mx * mx - q * q * v11
    root = max(b * b - a * c, 0.0) ** 0.5
    return Ratio(float(mx / my), float((b - root) / a), float((b + root) / a))
