"""Paired bootstrap over questions (Koehn 2004), Holm's adjustment and Fieller's interval, shared by the report, the
gate and the knowledge verdict (whose randomization tests are in ``harness_ext.randomization``).

Both runs are resampled with the same question indices, and each resample recomputes the *corpus* metric:
the mean for per-question metrics, exp(sum NLL / sum tokens) for perplexity (never a mean of per-question values).
"""

from __future__ import annotations

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


@lru_cache(maxsize=8)
def resample_weights(n: int, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """(n_resamples, n) counts: how often each question is drawn in each resample. Fixed seed: same inputs, same
    intervals. Cached (a report or gate draws the same counts for every metric of a question set; callers never
    write to them)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    flat = (np.arange(n_resamples)[:, None] * n + idx).ravel()
    weights = np.bincount(flat, minlength=n_resamples * n).reshape(n_resamples, n).astype(float)
    weights.setflags(write=False)
    return weights


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
