"""Did the model learn the document? The seen/unseen control group turned into numbers, for the report and the gate.

Held-out questions come in two groups (``data.Split.groups``): *seen* (document training read their passages) and
*unseen* (their passages were withheld from every training input). Learning the answers' style, or the domain in
general, lifts both groups; learning the document lifts only the seen one. So:

- difference-in-differences (DiD): (model - base) on seen questions minus (model - base) on unseen questions, with a
  95 % bootstrap interval that resamples questions within each group, paired across the two models;
- knowledge-gap closure on seen questions: (closed-book model - closed-book base) / (open-book base - closed-book
  base): the share of what the passage adds (to the base) that training put into the weights; bootstrap interval
  over seen questions, paired across the three runs;
- per-question transitions of the probe (base -> model, right = lm-eval's ``acc``): learned, forgotten, still known,
  still unknown, per group;
- a verdict on the primary metric (closed-book probe ``margin``: continuous, so the most power): learned the
  document (interval above 0), worse (below 0) or no evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


from harness_ext import metrics
from harness_ext.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, columns, resample_weights, statistic

PRIMARY = ("fm5_qa_mc_closed", "margin")
DID_METRICS = (("fm5_qa_mc_closed", "margin"), ("fm5_qa_mc_closed", "acc"), ("fm5_qa_closed", "f1"),
               ("fm5_qa_closed", "bertscore_f1"), ("fm5_qa_closed", "perplexity"))
CLOSURE_METRICS = ("margin", "acc")


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float  # 95 % interval
    high: float
    n_seen: int
    n_unseen: int = 0

    @property
    def direction(self) -> int:
        """+1: the interval lies above 0; -1: below; 0: it holds 0 (or is undefined)."""
        if math.isnan(self.low) or math.isnan(self.high):
            return 0
        return 1 if self.low > 0 else -1 if self.high < 0 else 0


def _kind(metric: str) -> str:
    return "perplexity" if metrics.METRICS[metric].kind == "perplexity" else "mean"


def _interval(draws: np.ndarray) -> tuple[float, float]:
    import numpy as np

    finite = draws[np.isfinite(draws)]
    if finite.size < draws.size / 2:  # mostly undefined (e.g. a gap that is often <= 0)
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def diff_in_diff(metric: str, base_seen: list, model_seen: list, base_unseen: list, model_unseen: list,
                 n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Estimate:
    """(model - base) on seen minus (model - base) on unseen questions; each list in its group's question order,
    base and model over the same questions. Corpus metrics (perplexity) are recomputed on every resample."""
    import numpy as np

    if len(base_seen) != len(model_seen) or len(base_unseen) != len(model_unseen) or not base_seen or not base_unseen:
        raise ValueError("diff_in_diff needs paired, non-empty seen and unseen lists")
    kind = _kind(metric)
    cols = [columns(kind, v) for v in (base_seen, model_seen, base_unseen, model_unseen)]

    def effect(w_seen, w_unseen):
        return (statistic(kind, w_seen, cols[1]) - statistic(kind, w_seen, cols[0])) - \
               (statistic(kind, w_unseen, cols[3]) - statistic(kind, w_unseen, cols[2]))

    point = float(effect(np.ones((1, len(base_seen))), np.ones((1, len(base_unseen))))[0])
    draws = effect(resample_weights(len(base_seen), n_resamples, seed),
                   resample_weights(len(base_unseen), n_resamples, seed + 1))
    return Estimate(point, *_interval(draws), len(base_seen), len(base_unseen))


def gap_closure(closed_base: list[float], closed_model: list[float], open_base: list[float],
                n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Estimate:
    """(closed model - closed base) / (open base - closed base) over the same (seen) questions. Undefined (nan) when
    the passage does not help the base (denominator <= 0)."""
    import numpy as np

    if not (len(closed_base) == len(closed_model) == len(open_base)) or not closed_base:
        raise ValueError("gap_closure needs three equal, non-empty lists")
    cb, cm, ob = (columns("mean", v) for v in (closed_base, closed_model, open_base))

    def ratio(w):
        gap = statistic("mean", w, ob) - statistic("mean", w, cb)
        gain = statistic("mean", w, cm) - statistic("mean", w, cb)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(gap > 0, gain / np.where(gap > 0, gap, 1.0), np.nan)

    point = float(ratio(np.ones((1, len(closed_base))))[0])
    draws = ratio(resample_weights(len(closed_base), n_resamples, seed))
    return Estimate(point, *_interval(draws), len(closed_base))


def transitions(base_right: list[bool], model_right: list[bool]) -> dict[str, int]:
    """Per-question changes from base to model: learned, forgotten, still known, still unknown."""
    out = {"learned": 0, "forgotten": 0, "still known": 0, "still unknown": 0}
    for b, m in zip(base_right, model_right, strict=True):
        out["still known" if b and m else "learned" if m else "forgotten" if b else "still unknown"] += 1
    return out


def verdict(estimate: Estimate | None, metric: str = PRIMARY[1], task: str = PRIMARY[0]) -> str:
    """One sentence: learned the document / no evidence / worse, at 95 %, naming the metric."""
    if estimate is None:
        return f"No verdict: {task} {metric} needs seen and unseen questions of the base and the model."
    better = metrics.METRICS[metric].higher_is_better
    what = (f"{task} {metric}, seen-minus-unseen gain {estimate.value:+.3f} [{estimate.low:+.3f}, "
            f"{estimate.high:+.3f}], {estimate.n_seen} seen / {estimate.n_unseen} unseen questions")
    d = estimate.direction * (1 if better else -1)
    if d > 0:
        return f"Learned the document (95 %): {what}."
    if d < 0:
        return f"Worse on what it read (95 %): {what}."
    return f"No evidence that it learned the document (95 % interval holds 0): {what}."
