"""Studentized randomization tests of the knowledge verdict (``randomization_did``: the diff-in-diff, ``sign_flip``:
a gain) and the intervals that invert them, over one set of masks and moments, so that an interval cannot disagree
with the p-value printed beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from harness_ext.stats import DEFAULT_SEED, columns

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


def _gain_moments(kind: str, sums, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gain, variance of the gain) per arrangement from ``sums``, the sums of each of ``_gain_columns``' columns
    (one array per column, a value per arrangement) over ``k`` questions. Perplexity: exp(NLL / tokens) of the model
    minus the base's, its variance from the influence values of the two ratio estimators."""
    import numpy as np

    denominator = np.maximum(k * (k - 1), 1)
    if kind == "perplexity":
        a, c, e, f, aa, ac, cc, ee, ef, ff, ae, af, ce, cf = sums
        rm, rb = a / c, e / f
        pm, pb = np.exp(rm), np.exp(rb)
        x, y = pm * k / c, pb * k / f  # d ppl / d (per-question NLL - ratio x tokens), times k
        squares = (x * x * (aa - 2 * rm * ac + rm * rm * cc) + y * y * (ee - 2 * rb * ef + rb * rb * ff)
                   - 2 * x * y * (ae - rb * af - rm * ce + rm * rb * cf))
        return pm - pb, np.maximum(squares, 0) / denominator
    s1, s2 = sums
    mean = s1 / k
    return mean, np.maximum(s2 - k * mean * mean, 0) / denominator


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
    import numpy as np

    tol = 1e-10 * max(1.0, abs(observed))
    greater, less = int(np.count_nonzero(null >= observed - tol)), int(np.count_nonzero(null <= observed + tol))
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

    values, dids, variances = stat(seen_sums.T, (total - seen_sums).T)
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
        values = stat((s1, s2), (u1, u2))[0]
        return _p_values(float(values[0]), values[1:], exact)

    return Randomization(effect, *p, exact, *_invert(p_at, effect, 4 * se))


def _hall(s1: np.ndarray, s2: np.ndarray | float, s3: np.ndarray, n: int) -> np.ndarray:
    """Hall's (1992) skewness-corrected studentized mean from the sums of d, d^2 and d^3 over n changes:
    sqrt(n) (S + g S^2 / 3 + g^2 S^3 / 27 + g / (6 n)), S = mean / sd, g the sample skewness. Monotone in S; its
    one-sided error is O(1/n) instead of the t statistic's O(1/sqrt(n)) when the changes are skewed."""
    import numpy as np

    mean = s1 / n
    square = mean * mean
    n_square = n * square
    var = np.maximum(s2 - n_square, 0) / max(n - 1, 1) + _TINY
    sd = np.sqrt(var)
    g = (s3 - 3 * mean * s2 + 3 * square * s1 - n_square * mean) / (n * var * sd)
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
    gain, var = _gain_moments(kind, direct.sum(axis=0)[:, None], k[:1])
    effect, se = float(gain[0]), float(np.sqrt(var[0]))
    if kind == "perplexity":
        sums = (1 - masks) @ direct + masks @ _gain_columns(kind, model, base)
        gain, var = _gain_moments(kind, sums.T, k)
        values = gain / np.sqrt(var + _TINY) if studentized else gain
        return Randomization(effect, *_p_values(float(values[0]), values[1:], exact), exact)
    d = direct[:, 0]
    signs = 1 - 2 * masks
    # sums of s, s d, s d^2, s d^3 per row, each a contiguous column (p_at reads them ~30 times per test)
    p0, p1, p2, p3 = (signs @ np.stack([np.ones(n), d, d * d, d ** 3], axis=1)).T.copy()
    plain = [float(np.sum(d ** p)) for p in range(4)]  # n, sum d, sum d^2, sum d^3

    def p_at(shift: float) -> tuple[float, float]:  # the test of "gain = shift": every change lowered by it
        s1 = p1 - shift * p0
        if not studentized:
            values = s1
        else:
            s2 = plain[2] - 2 * shift * plain[1] + n * shift * shift  # the same for every row: (s d)^2 = d^2
            s3 = p3 - 3 * shift * p2 + 3 * shift * shift * p1 - shift ** 3 * p0
            values = _hall(s1, s2, s3, n)
        return _p_values(float(values[0]), values[1:], exact)

    return Randomization(effect, *p_at(0.0), exact, *_invert(p_at, effect, 4 * se))
