"""The report's per-question tables (the QA tasks' generated answers, the probe's top-ranked options), each model
beside the baseline with its flips, from the results reader (harness_ext.results) into the view model's rows
(reports.view)."""

from __future__ import annotations

from harness_ext import results
from reports.view import Answer, Cell, ChoiceRow, Pick, QuestionRow, _letter

FLIP_THRESHOLD = 0.5  # F1 at or above this counts as "right" for the flip columns


def _question_table(models: list[results.ModelRun], tasks: list[str], family: str):
    """For each question of the family's tasks: (task, id, its first logged copy, the baseline's, each model's or
    None)."""
    for task in tasks:
        if _family(models, task) != family:
            continue
        by_model = _by_model(models, task)
        for qid in sorted(set().union(*[set(m) for m in by_model])):
            yield task, qid, next(m[qid] for m in by_model if qid in m), by_model[0].get(qid), \
                [m.get(qid) for m in by_model]


def question_rows(base: results.ModelRun, others: list[results.ModelRun], tasks: list[str]) -> list[QuestionRow]:
    """The QA tasks' table: each model's generated answer, F1, BERTScore, NLL per token, flips by F1."""
    rows = []
    for task, qid, ref, base_q, per_model in _question_table([base, *others], tasks, "qa"):
        answers = []
        for i, q in enumerate(per_model):
            if q is None:
                answers.append(Answer("(not evaluated)", "", "", "", Cell("")))
                continue
            flip = _flip(base_q.f1 >= FLIP_THRESHOLD, q.f1 >= FLIP_THRESHOLD) if i and base_q else Cell("")
            answers.append(Answer(q.prediction, f"{q.f1:.2f}", f"{q.bertscore[2]:.3f}" if q.bertscore else "",
                                  f"{q.nll / max(q.tokens, 1):.2f}", flip))
        rows.append(QuestionRow(task, qid, (base_q or ref).group or "", ref.question, ref.answer, answers))
    return rows


def _by_model(models: list[results.ModelRun], task: str) -> list[dict[str, results.Question]]:
    """Per model, its questions of `task` by id ({} where it has none), BERTScore filled in for QA tasks."""
    out = []
    for run in models:
        tr = run.tasks.get(task)
        if tr:
            results.score_bertscore(tr)  # a no-op for the probe
        out.append({q.id: q for q in tr.questions} if tr else {})
    return out


def _flip(was: bool, now: bool) -> Cell:
    """A question's change against the baseline: wrong -> right, right -> wrong, or nothing."""
    if now != was:
        return Cell("wrong → right", "up") if now else Cell("right → wrong", "down")
    return Cell("")


def _family(runs: list[results.ModelRun], task: str) -> str | None:
    return next((r.tasks[task].family for r in runs if task in r.tasks), None)


def choice_rows(base: results.ModelRun, others: list[results.ModelRun], tasks: list[str]) -> list[ChoiceRow]:
    """The probe's table: each model's top-ranked option, right or wrong, its margin, flips against the baseline."""
    rows = []
    for task, qid, ref, base_q, per_model in _question_table([base, *others], tasks, "mc"):
        picks = []
        for i, q in enumerate(per_model):
            if q is None:
                picks.append(Pick("(not evaluated)", Cell(""), "", Cell("")))
                continue
            right = q.picked == q.gold
            flip = _flip(base_q.picked == base_q.gold, right) if i and base_q else Cell("")
            picks.append(Pick(f"{_letter(q.picked)}: {q.prediction}", Cell("✓", "up") if right else Cell("✗", "down"),
                              f"{q.values['margin']:+.2f}", flip))
        rows.append(ChoiceRow(task, qid, (base_q or ref).group or "", ref.question,
                              f"{_letter(ref.gold)}: {ref.choices[ref.gold]}", picks))
    return rows
