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
- the pairing of two runs' questions (by id, and by group from the base's record) that all of the above need;
- a verdict on the primary metric (closed-book probe ``margin``: continuous, so the most power): learned the
  document (interval above 0), worse (below 0) or no evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


from harness_ext import metrics
from harness_ext import results as R
from harness_ext.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, columns, paired_bootstrap, resample_weights, statistic

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
    kind = metrics.bootstrap_kind(metric)
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


# ---------------------------------------------------------------------------------- two runs, paired by question


def values_by_id(tr: R.TaskRun, metric: str) -> dict:
    """A task run's per-question values (``results.per_question``) by question id."""
    return dict(zip(tr.ids, R.per_question(tr, metric)))


def compare(base: R.TaskRun, other: R.TaskRun, metric: str, ids: list[str] | None = None,
            n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED):
    """Paired bootstrap (``stats.Comparison``) of ``metric`` over ``ids`` (default: the questions both runs
    answered), or None when they share none."""
    ids = sorted(set(base.ids) & set(other.ids)) if ids is None else ids
    if not ids:
        return None
    b, o = values_by_id(base, metric), values_by_id(other, metric)
    return paired_bootstrap(metrics.bootstrap_kind(metric), [b[i] for i in ids], [o[i] for i in ids],
                            n_resamples, seed)


@dataclass(frozen=True)
class GroupValues:
    """Two runs' values of one metric over the questions both answered, by group (the base's record)."""

    base_seen: list
    model_seen: list
    base_unseen: list
    model_unseen: list
    seen_ids: list[str]
    unseen_ids: list[str]


def group_values(base: R.TaskRun, other: R.TaskRun, metric: str) -> GroupValues | None:
    """The values of both runs, seen and unseen apart, or None when a run has no seen/unseen record or a group is
    empty."""
    if not (base.has_groups and other.has_groups):
        return None
    group = {q.id: q.group for q in base.questions}
    b, o = values_by_id(base, metric), values_by_id(other, metric)
    ids = {g: sorted(i for i in set(b) & set(o) if group[i] == g) for g in ("seen", "unseen")}
    if not ids["seen"] or not ids["unseen"]:
        return None
    return GroupValues([b[i] for i in ids["seen"]], [o[i] for i in ids["seen"]], [b[i] for i in ids["unseen"]],
                       [o[i] for i in ids["unseen"]], ids["seen"], ids["unseen"])


@dataclass(frozen=True)
class Effect:
    """The knowledge effect of one model on one metric: its gain on each group and their difference."""

    seen_gain: float  # model - base on seen questions (the corpus value: perplexity recomputed)
    unseen_gain: float
    did: Estimate
    base_gap: float  # the base's seen - unseen value
    model_gap: float


def effect(base: R.TaskRun, other: R.TaskRun, metric: str, n_resamples: int = DEFAULT_RESAMPLES,
           seed: int = DEFAULT_SEED) -> Effect | None:
    """Diff-in-diff of ``metric`` between two runs of one task, with the gains per group; None without groups."""
    g = group_values(base, other, metric)
    if g is None:
        return None
    value = lambda v: R.corpus_value(metric, v)  # noqa: E731
    est = diff_in_diff(metric, g.base_seen, g.model_seen, g.base_unseen, g.model_unseen, n_resamples, seed)
    return Effect(value(g.model_seen) - value(g.base_seen), value(g.model_unseen) - value(g.base_unseen), est,
                  value(g.base_seen) - value(g.base_unseen), value(g.model_seen) - value(g.model_unseen))


def closure(closed_base: R.TaskRun, closed_model: R.TaskRun, open_base: R.TaskRun, metric: str) -> Estimate | None:
    """Knowledge-gap closure over the seen questions all three runs answered; None without any."""
    seen = sorted({q.id for q in closed_base.questions if q.group == "seen"} & set(closed_model.ids)
                  & set(open_base.ids))
    if not seen:
        return None
    vals = [values_by_id(t, metric) for t in (closed_base, closed_model, open_base)]
    return gap_closure(*([v[i] for i in seen] for v in vals))


def probe_transitions(base: R.TaskRun, model: R.TaskRun) -> dict[str, dict[str, int]]:
    """Per group (the base's record), the probe's per-question transitions from base to model."""
    b_right = {q.id: (q.group, q.picked == q.gold) for q in base.questions}
    m_right = {q.id: q.picked == q.gold for q in model.questions}
    out = {}
    for group in ("seen", "unseen"):
        ids = sorted(i for i, (g, _) in b_right.items() if g == group and i in m_right)
        out[group] = transitions([b_right[i][1] for i in ids], [m_right[i] for i in ids])
    return out
