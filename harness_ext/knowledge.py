"""Did the model learn the document? The seen/unseen control group turned into numbers, for the report and the gate.

Held-out questions come in two groups (``data.Split.groups``): *seen* (document training read their passages) and
*unseen* (their passages were withheld from every training input). Learning the answers' style, or the domain in
general, lifts both groups; learning the document lifts only the seen one. So:

- difference-in-differences (DiD): (model - base) on seen questions minus (model - base) on unseen questions, with a
  studentized randomization test (the group labels are a hash of the id, so permuting them is the design's own
  null) and the 95 % interval that inverts it (perplexity: a bootstrap interval, ``diff_in_diff``);
- the gain on each group, with a sign-flip randomization test and the interval that inverts it;
- knowledge-gap closure: the DiD over the seen questions' open-book gap (open-book base - closed-book base), with
  Fieller's interval, and no ratio at all where that gap is not itself above 0;
- per-question transitions of the probe (base -> model, right = lm-eval's ``acc``);
- the pairing of two runs' questions (by id, and by group from the base's record) that all of the above need;
- the verdict: one comparison declared before training (``Primary``; default: the final adapter, closed-book probe
  ``margin``), "learned" only when the DiD *and* the seen group's own gain are both above 0 (an intersection-union
  test, each one-sided at 2.5 %), "worse" only when both are below 0, "too few questions" below ``MIN_PER_GROUP``;
  every other model x metric is
  exploratory, its p-values Holm-adjusted over the family.

The sentences that state them are in ``harness_ext.claims``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


from harness_ext import DOC_TASK, metrics
from harness_ext import results
from harness_ext.randomization import DEFAULT_PERMUTATIONS, randomization_did, sign_flip
from harness_ext.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, columns, fieller, paired_bootstrap, resample_weights, statistic

DID_METRICS = ((DOC_TASK, "margin"), (DOC_TASK, "acc"),
               ("fm5_qa_mc_closed", "margin"), ("fm5_qa_mc_closed", "acc"), ("fm5_qa_mc_closed", "acc_pmi"),
               ("fm5_qa_closed", "f1"),
               ("fm5_qa_closed", "bertscore_f1"), ("fm5_qa_closed", "perplexity"))
CLOSURE_METRICS = ("margin", "acc")


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float  # 95 % interval
    high: float
    n_seen: int
    n_unseen: int = 0
    note: str = ""  # why there is no value or interval

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
                closed_base_unseen: list[float] | None = None, closed_model_unseen: list[float] | None = None
                ) -> Estimate:
    """The part of the open-book gap that training closed *by reading*: (closed-book gain on seen questions minus
    the gain on unseen ones, the diff-in-diff) / (open base - closed base on seen questions), with Fieller's 95 %
    interval. A style gain lifts both groups and cancels in the numerator; only a gain on what was read counts.
    Without the unseen lists, the raw seen gain over the gap (as before the control group). No ratio (nan, and
    ``note`` says why) when the passage's help to the base, the denominator, is not itself above 0 at 95 %."""
    if not (len(closed_base) == len(closed_model) == len(open_base)) or not closed_base:
        raise ValueError("gap_closure needs three equal, non-empty lists")
    gains = [m - b for m, b in zip(closed_model, closed_base)]
    gaps = [o - b for o, b in zip(open_base, closed_base)]
    unseen = None
    if closed_base_unseen is not None:
        if len(closed_base_unseen) != len(closed_model_unseen or []) or not closed_base_unseen:
            raise ValueError("gap_closure needs paired, non-empty unseen lists")
        unseen = [m - b for m, b in zip(closed_model_unseen, closed_base_unseen)]
    ratio = fieller(gains, gaps, minus=unseen)
    note = f"n/a: the passage's help to the base (open- minus closed-book) is not above 0 ({ratio.reason})" \
        if ratio.reason and "denominator" in ratio.reason else f"n/a: {ratio.reason}" if ratio.reason else ""
    return Estimate(ratio.value, ratio.low, ratio.high, len(closed_base), len(unseen or []), note=note)


def transitions(base_right: list[bool], model_right: list[bool]) -> dict[str, int]:
    """Per-question changes from base to model: learned, forgotten, still known, still unknown."""
    out = {"learned": 0, "forgotten": 0, "still known": 0, "still unknown": 0}
    for b, m in zip(base_right, model_right, strict=True):
        out["still known" if b and m else "learned" if m else "forgotten" if b else "still unknown"] += 1
    return out


# ---------------------------------------------------------------------------------- two runs, paired by question


def values_by_id(tr: results.TaskRun, metric: str) -> dict:
    """A task run's per-question values (``results.per_question``) by question id."""
    return dict(zip(tr.ids, results.per_question(tr, metric)))


def compare(base: results.TaskRun, other: results.TaskRun, metric: str, ids: list[str] | None = None,
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


def group_mismatch(base: results.TaskRun, other: results.TaskRun) -> list[str]:
    """The questions both runs answered whose seen/unseen group differs between their records (other split
    settings, another data file): the diff-in-diff would mix the groups."""
    if not (base.has_groups and other.has_groups):
        return []
    theirs = {q.id: q.group for q in other.questions}
    return sorted(q.id for q in base.questions if q.id in theirs and theirs[q.id] != q.group)


def group_values(base: results.TaskRun, other: results.TaskRun, metric: str) -> GroupValues | None:
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
    """The knowledge effect of one model on one metric: its gain on each group and their difference, with the
    randomization tests of the verdict (p-values one-sided in the metric's better / worse direction)."""

    seen: Estimate  # model - base on seen questions (corpus value; the interval inverts the sign-flip test)
    unseen: Estimate
    did: Estimate  # seen gain - unseen gain
    base_gap: float  # the base's seen - unseen value
    model_gap: float
    p_did_better: float
    p_did_worse: float
    p_seen_better: float
    p_seen_worse: float = 1.0

    @property
    def p_did(self) -> float:
        """Two-sided randomization p-value of the diff-in-diff."""
        return min(1.0, 2 * min(self.p_did_better, self.p_did_worse))

    @property
    def seen_gain(self) -> float:
        return self.seen.value

    @property
    def unseen_gain(self) -> float:
        return self.unseen.value


def effect(base: results.TaskRun, other: results.TaskRun, metric: str, n_resamples: int = DEFAULT_RESAMPLES,
           seed: int = DEFAULT_SEED, n_permutations: int = DEFAULT_PERMUTATIONS) -> Effect | None:
    """Diff-in-diff of ``metric`` between two runs of one task, with the gains per group; None without groups."""
    g = group_values(base, other, metric)
    if g is None:
        return None
    return effect_of(metric, g.base_seen, g.model_seen, g.base_unseen, g.model_unseen, n_resamples, seed,
                     n_permutations)


def effect_of(metric: str, base_seen: list, model_seen: list, base_unseen: list, model_unseen: list,
              n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
              n_permutations: int = DEFAULT_PERMUTATIONS, studentized: bool = True) -> Effect:
    """The knowledge effect from per-question values (each group's lists paired, base and model): studentized
    randomization tests and the intervals that invert them (``randomization``); perplexity's intervals by the bootstrap.
    ``studentized`` False keeps the raw statistics (to measure what studentizing buys, bench/verdict_null.py)."""
    kind, higher = metrics.bootstrap_kind(metric), metrics.METRICS[metric].higher_is_better
    value = lambda v: results.corpus_value(metric, v)  # noqa: E731
    did = randomization_did(kind, base_seen, model_seen, base_unseen, model_unseen, n_permutations, seed, studentized)
    seen = sign_flip(kind, base_seen, model_seen, n_permutations, seed, studentized)
    unseen = sign_flip(kind, base_unseen, model_unseen, n_permutations, seed, studentized)
    if kind == "perplexity":  # no per-question shift to invert: the percentile bootstrap
        boot = [paired_bootstrap(kind, b, m, n_resamples, seed) for b, m in ((base_seen, model_seen),
                                                                             (base_unseen, model_unseen))]
        gains = [Estimate(c.delta, c.low, c.high, c.n) for c in boot]
        estimate = diff_in_diff(metric, base_seen, model_seen, base_unseen, model_unseen, n_resamples, seed)
    else:
        gains = [Estimate(r.observed, r.low, r.high, n) for r, n in ((seen, len(base_seen)),
                                                                    (unseen, len(base_unseen)))]
        estimate = Estimate(did.observed, did.low, did.high, len(base_seen), len(base_unseen))
    better = (lambda r: r.p_greater) if higher else (lambda r: r.p_less)
    worse = (lambda r: r.p_less) if higher else (lambda r: r.p_greater)
    return Effect(*gains, estimate, value(base_seen) - value(base_unseen), value(model_seen) - value(model_unseen),
                  better(did), worse(did), better(seen), worse(seen))


def closure(closed_base: results.TaskRun, closed_model: results.TaskRun, open_base: results.TaskRun, metric: str) -> Estimate | None:
    """``gap_closure`` of two runs of the closed-book task and the base's open-book run: the diff-in-diff (seen
    questions all three answered, unseen questions both closed-book runs answered) over the seen questions' gap;
    None without seen and unseen questions."""
    group = {q.id: q.group for q in closed_base.questions}
    vals = [values_by_id(t, metric) for t in (closed_base, closed_model, open_base)]
    seen = sorted(i for i in vals[0] if group.get(i) == "seen" and i in vals[1] and i in vals[2])
    unseen = sorted(i for i in vals[0] if group.get(i) == "unseen" and i in vals[1])
    if not seen or not unseen:
        return None
    return gap_closure(*([v[i] for i in seen] for v in vals), [vals[0][i] for i in unseen],
                       [vals[1][i] for i in unseen])


def probe_transitions(base: results.TaskRun, model: results.TaskRun) -> dict[str, dict[str, int]]:
    """Per group (the base's record), the probe's per-question transitions from base to model."""
    b_right = {q.id: (q.group, q.picked == q.gold) for q in base.questions}
    m_right = {q.id: q.picked == q.gold for q in model.questions}
    out = {}
    for group in ("seen", "unseen"):
        ids = sorted(i for i, (g, _) in b_right.items() if g == group and i in m_right)
        out[group] = transitions([b_right[i][1] for i in ids], [m_right[i] for i in ids])
    return out
