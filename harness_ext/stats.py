"""Paired bootstrap over questions (Koehn 2004), shared by the report and the gate.

Both runs are resampled with the same question indices, and each resample recomputes the *corpus* metric:
the mean for per-question metrics, exp(sum NLL / sum tokens) for perplexity (never a mean of per-question values).
"""

from __future__ import annotations

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
