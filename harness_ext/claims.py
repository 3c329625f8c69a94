"""The verdict in words: the comparison declared before training (``Primary``), what each line claims (``CLAIMS``:
the question probe says whether the document is usable by a question, the continuation probe whether its text was
stored), the sentence of one effect (``verdict``) and the pair of lines in plain words (``two_lines``). Every
sentence claims only what its tests (``knowledge.effect``) showed; bench/verdict_null.py counts them under the null.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness_ext import DOC_TASK, metrics

PRIMARY = ("fm5_qa_mc_closed", "margin")  # the default declared comparison's task and metric (on the final adapter)
STORED = (DOC_TASK, "margin")  # the default declared "stored" comparison (the continuation probe), tested first
MIN_PER_GROUP = 40  # questions (passages) per group below which no verdict is given: the smallest size at which
# "learned" stays at 2.5 % (+ simulation error) under skewed nulls (bench/verdict_null.py; README "The verdict")
ALPHA = 0.05  # two-sided; each one-sided test of the verdict at ALPHA / 2


@dataclass(frozen=True)
class Primary:
    """The comparison declared before training: which model of the run (``final``, ``document`` or
    ``checkpoint-N``) against the base, on which task and metric."""

    model: str = "final"
    task: str = PRIMARY[0]
    metric: str = PRIMARY[1]

    def __str__(self) -> str:
        return f"{self.model}:{self.task}:{self.metric}"

    @classmethod
    def parse(cls, text: str, where: str = "primary comparison") -> Primary:
        """``MODEL:TASK:METRIC`` (e.g. ``final:fm5_qa_mc_closed:margin``); ValueError naming ``where``."""
        parts = str(text).split(":")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"{where}: expected MODEL:TASK:METRIC (e.g. final:fm5_qa_mc_closed:margin), got "
                             f"{str(text)[:60]!r}")
        model, task, metric = parts
        if model not in ("final", "document") and not (model.startswith("checkpoint-") and model[11:].isdigit()):
            raise ValueError(f"{where}: model must be final, document or checkpoint-N, not {model!r:.40}")
        per_question = sorted(m for m, x in metrics.METRICS.items() if x.kind != "perplexity")
        if metric not in per_question:
            raise ValueError(f"{where}: metric must be one of {per_question}, not {metric!r:.40}")
        return cls(model, task, metric)


def _gain(metric: str, value: float, low: float, high: float) -> str:
    return f"{value:+.3f} [{low:+.3f}, {high:+.3f}]"


# what each line of the verdict claims, and what its units are: the question probe says whether the document is
# usable by a question ("learned the document"), the continuation probe whether its text was stored
CLAIMS = {"usable": ("learned the document", "questions"), "stored": ("stored the document's text", "passages")}


def line_of(task: str) -> str:
    """Which line of the verdict a task's comparison is: "stored" (the continuation probe) or "usable"."""
    return "stored" if task == STORED[0] else "usable"


def describe(effect: Effect, metric: str, task: str) -> str:
    """The numbers of a knowledge effect as the verdict states them: both gains and the diff-in-diff with their
    intervals, the one-sided p-values, the group sizes."""
    d, s, u = effect.did, effect.seen, effect.unseen
    unit = CLAIMS[line_of(task)][1]
    return (f"{task} {metric}: seen {unit} {_gain(metric, s.value, s.low, s.high)}, unseen "
            f"{_gain(metric, u.value, u.low, u.high)}, seen minus unseen {_gain(metric, d.value, d.low, d.high)} "
            f"(randomization p = {effect.p_did_better:.3g} one-sided; seen gain p = {effect.p_seen_better:.3g}); "
            f"{d.n_seen} seen / {d.n_unseen} unseen {unit}")


UNTESTED = "untested"  # the css of a line that tested nothing (too few questions, no results)


def verdict(effect: Effect | None, metric: str = PRIMARY[1], task: str = PRIMARY[0]) -> tuple[str, str]:
    """(sentence, css) of a knowledge effect: "up" learned the document (the continuation probe: stored its text),
    "down" worse on what it read, "ns" no claim of either, UNTESTED no test (no results, or too few). Each claim
    needs two one-sided randomization tests at ALPHA / 2 (an intersection-union test): "learned" the diff-in-diff
    *and* the seen group's own gain above 0, "worse" the diff-in-diff *and* the seen group's own change below 0. A
    diff-in-diff alone gets a sentence that says only that; every sentence with "(95 %)" in it together holds 5 %
    under the null (bench/verdict_null.py measures it). Below MIN_PER_GROUP questions (passages) in a group there is
    no test."""
    claim, unit = CLAIMS[line_of(task)]
    if effect is None:
        return f"No verdict: {task} {metric} needs seen and unseen {unit} of the base and the model.", UNTESTED
    what, d = describe(effect, metric, task), effect.did
    if min(d.n_seen, d.n_unseen) < MIN_PER_GROUP:
        return (f"Too few {unit} for a verdict (at least {MIN_PER_GROUP} per group): {what}.", UNTESTED)
    level = ALPHA / 2
    if effect.p_did_better < level and effect.p_seen_better < level:
        return f"{claim[0].upper()}{claim[1:]} (95 %): {what}.", "up"
    if effect.p_did_worse < level and effect.p_seen_worse < level:
        return (f"Worse on what it read (95 %): the seen {unit} got worse, and more than the unseen ones: "
                f"{what}.", "down")
    if effect.p_did_better < level:
        return (f"Seen {unit} moved more than unseen ones, but the seen {unit} did not themselves improve "
                f"(95 %): not evidence that it {claim}: {what}.", "ns")
    if effect.p_did_worse < level:
        return (f"Seen {unit} moved less than unseen ones, but the seen {unit} did not themselves get worse "
                f"(95 %): not evidence that it lost what it read: {what}.", "ns")
    return f"No evidence that it {claim} (95 %): {what}.", "ns"


def two_lines(stored_css: str, usable_css: str | None) -> tuple[str, str]:
    """The pair in plain words (fixed-sequence testing: the stored line first at the full level; the usable line is
    tested only when the text was stored, so the pair's family-wise error stays at 5 %). ``usable_css`` None: the
    question probe was not evaluated. Only what was tested is said: nothing about questions when their line gave
    no verdict, and "no evidence" rather than a negative."""
    if stored_css == UNTESTED:
        return ("No verdict on storage (too few passages, or no results)"
                + ("" if usable_css is None else "; the question line is not tested (it comes second)") + ".",
                UNTESTED)
    if stored_css != "up":
        return ("Not stored: no evidence that the adapter stored the document's text"
                + ("" if usable_css is None else "; the question line is not tested (it comes second)") + ".",
                stored_css)
    if usable_css is None or usable_css == UNTESTED:
        why = "the question probe was not evaluated" if usable_css is None else \
            "the question line gives no verdict: too few questions, or no results"
        return f"Stored: the adapter stored the document's text ({why}).", "up"
    if usable_css == "up":
        return "Stored and usable: the adapter stored the document's text and answers questions about it.", "up"
    return "Stored, not shown usable by question: the adapter stored the document's text; no evidence that it " \
           "answers questions about it better.", "ns"
