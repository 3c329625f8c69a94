"""The report's sections, built from the results reader (harness_ext.results) and the control-group arithmetic
(harness_ext.knowledge) into the view model's objects (reports.view): this module decides labels and formats, it
computes no statistic of its own."""

from __future__ import annotations

from harness_ext import ALL_TASKS
from harness_ext import knowledge as K
from harness_ext import results as R
from reports.view import (Answer, Cell, ChoiceRow, ClosureRow, DidRow, KnowledgeRow, MetricCell, Pick, QuestionRow,
                          SummaryLine, SummaryTable, TransitionRow, Verdict, _letter, fmt, fmt_delta)

FLIP_THRESHOLD = 0.5  # F1 at or above this counts as "right" for the flip columns
TASK_ORDER = ALL_TASKS
# (closed-book task, its open-book ceiling, metrics) for the knowledge view; the probe first: it separates knowledge
# from answer style, which F1 and perplexity do not
KNOWLEDGE = (("fm5_qa_mc_closed", "fm5_qa_mc_open", ("margin", "acc_pmi", "acc", "acc_norm")),
             ("fm5_qa_closed", "fm5_qa_open", ("f1", "bertscore_f1", "perplexity", "exact_match")))


def _delta_cell(metric: str, cmp) -> Cell:
    higher = R.METRICS[metric].higher_is_better
    better = cmp.delta > 0 if higher else cmp.delta < 0
    if not cmp.significant:
        return Cell(fmt_delta(metric, cmp.delta), "ns", "95 % interval includes zero")
    return Cell(fmt_delta(metric, cmp.delta) + (" ▲" if better else " ▼"), "up" if better else "down",
                "95 % interval excludes zero")


def task_names(runs: list[R.ModelRun]) -> list[str]:
    names = {t for r in runs for t in r.tasks}
    return [t for t in TASK_ORDER if t in names] + sorted(names - set(TASK_ORDER))


def summary_tables(base: R.ModelRun, others: list[R.ModelRun], tasks: list[str]) -> list[SummaryTable]:
    """Per task: one line per model, one cell per metric (value, delta to the baseline, 95 % interval)."""
    tables = []
    for task in tasks:
        tb = base.tasks.get(task)
        if tb is None:
            continue
        metrics = [(m, "↑ higher is better" if R.METRICS[m].higher_is_better else "↓ lower is better")
                   for m in tb.metrics]
        lines = [SummaryLine(base.label, [MetricCell(fmt(m, tb.aggregate.get(m, float("nan"))), Cell("baseline", "base"),
                                                     "") for m, _ in metrics])]
        mde = ["" for _ in metrics]
        n = str(len(tb.questions) or tb.n_effective)
        for run in others:
            to = run.tasks.get(task)
            if to is None:
                continue
            cells = []
            for i, (metric, _) in enumerate(metrics):
                if metric not in to.aggregate or metric not in tb.aggregate:
                    cells.append(MetricCell("n/a", Cell(""), ""))
                    continue
                cmp = K.compare(tb, to, metric) if tb.questions and to.questions else None
                if cmp is None:
                    cells.append(MetricCell(fmt(metric, to.aggregate[metric]),
                                            Cell(fmt_delta(metric, to.aggregate[metric] - tb.aggregate[metric]), "ns",
                                                 "no per-question samples: no interval"), "no interval"))
                    continue
                cells.append(MetricCell(fmt(metric, to.aggregate[metric]), _delta_cell(metric, cmp),
                                        f"[{fmt_delta(metric, cmp.low)}, {fmt_delta(metric, cmp.high)}]"))
                mde[i], n = fmt(metric, cmp.mde), str(cmp.n)
            lines.append(SummaryLine(run.label, cells))
        tables.append(SummaryTable(task, metrics, lines, n, mde))
    return tables


def knowledge_rows(base: R.ModelRun, others: list[R.ModelRun]) -> list[KnowledgeRow]:
    rows = []
    for run, (closed, opened, metric_names) in ((r, k) for r in others for k in KNOWLEDGE):
        closed_b, closed_o, open_o = base.tasks.get(closed), run.tasks.get(closed), run.tasks.get(opened)
        if not (closed_b and closed_o and closed_b.questions and closed_o.questions):
            continue
        for metric in metric_names:
            cmp = K.compare(closed_b, closed_o, metric) if metric in closed_b.aggregate else None
            if cmp is None:
                continue
            rows.append(KnowledgeRow(
                run.label, closed, metric, fmt(metric, cmp.base), fmt(metric, cmp.candidate), _delta_cell(metric, cmp),
                f"[{fmt_delta(metric, cmp.low)}, {fmt_delta(metric, cmp.high)}]",
                fmt(metric, open_o.aggregate[metric]) if open_o and metric in open_o.aggregate else "n/a"))
    return rows


def _fmt_est(metric: str, value: float) -> str:
    return "n/a" if value != value else fmt_delta(metric, value)


def _css(direction: int) -> str:
    return {1: "up", -1: "down", 0: "ns"}[direction]


def knowledge_view(base: R.ModelRun, others: list[R.ModelRun]):
    """The verdict per model, the diff-in-diff table, the gap closure and the probe's transitions."""
    verdicts, did_rows, closure_rows, transition_rows, notes = [], [], [], [], []
    missing = sorted({f"{r.label}/{t}" for r in [base, *others] for t, tr in r.tasks.items()
                      if tr.questions and not tr.has_groups})
    if missing:
        notes.append("No seen/unseen record in " + ", ".join(missing) + " (a run from before the control group, "
                     "or without samples): no diff-in-diff for those.")
    for run in others:
        primary = None
        for task, metric in K.DID_METRICS:
            tb, to = base.tasks.get(task), run.tasks.get(task)
            if not (tb and to and metric in tb.aggregate):
                continue
            eff = K.effect(tb, to, metric)
            if eff is None:
                continue
            est = eff.did
            better = R.METRICS[metric].higher_is_better
            css = _css(est.direction * (1 if better else -1))
            did_rows.append(DidRow(run.label, task, metric, "↑" if better else "↓", _fmt_est(metric, eff.seen_gain),
                                   _fmt_est(metric, eff.unseen_gain),
                                   Cell(_fmt_est(metric, est.value), css, "95 % interval excludes zero" if css != "ns"
                                        else "95 % interval includes zero"),
                                   f"[{_fmt_est(metric, est.low)}, {_fmt_est(metric, est.high)}]"))
            if (task, metric) == K.PRIMARY:
                primary = est
        verdicts.append(Verdict(run.label, K.verdict(primary), "ns" if primary is None else _css(primary.direction)))

        cb, cm, ob = base.tasks.get("fm5_qa_mc_closed"), run.tasks.get("fm5_qa_mc_closed"), \
            base.tasks.get("fm5_qa_mc_open")
        if cb and cm and ob and cb.has_groups and cm.has_groups:
            for metric in K.CLOSURE_METRICS:
                est = K.closure(cb, cm, ob, metric)
                if est is None:
                    break
                closure_rows.append(ClosureRow(run.label, metric, Cell("n/a" if est.value != est.value else
                                                                       f"{est.value:+.2f}", _css(est.direction)),
                                               "n/a (the passage does not help the base)" if est.low != est.low else
                                               f"[{est.low:+.2f}, {est.high:+.2f}]", str(est.n_seen)))
            for group, t in K.probe_transitions(cb, cm).items():
                transition_rows.append(TransitionRow(run.label, group, *(str(t[k]) for k in
                                                     ("learned", "forgotten", "still known", "still unknown"))))
        record = R.training_run(run)
        if record and cm and cm.has_groups:
            trained_seen = set(record.split.test_seen_ids)
            logged_seen = {q.id for q in cm.questions if q.group == "seen"}
            if trained_seen and not logged_seen <= trained_seen:
                notes.append(f"{run.label}: its training run's seen questions differ from the evaluated seen group "
                             f"(other split settings?); the diff-in-diff does not measure its document stage")
    return verdicts, did_rows, closure_rows, transition_rows, notes


def _question_table(models: list[R.ModelRun], tasks: list[str], family: str):
    """For each question of the family's tasks: (task, id, its first logged copy, the baseline's, each model's or
    None)."""
    for task in tasks:
        if _family(models, task) != family:
            continue
        by_model = _by_model(models, task)
        for qid in sorted(set().union(*[set(m) for m in by_model])):
            yield task, qid, next(m[qid] for m in by_model if qid in m), by_model[0].get(qid), \
                [m.get(qid) for m in by_model]


def question_rows(base: R.ModelRun, others: list[R.ModelRun], tasks: list[str]) -> list[QuestionRow]:
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
        rows.append(QuestionRow(task, qid, ref.question, ref.answer, answers))
    return rows


def _by_model(models: list[R.ModelRun], task: str) -> list[dict[str, R.Question]]:
    """Per model, its questions of `task` by id ({} where it has none), BERTScore filled in for QA tasks."""
    out = []
    for run in models:
        tr = run.tasks.get(task)
        if tr:
            R.score_bertscore(tr)  # a no-op for the probe
        out.append({q.id: q for q in tr.questions} if tr else {})
    return out


def _flip(was: bool, now: bool) -> Cell:
    """A question's change against the baseline: wrong -> right, right -> wrong, or nothing."""
    if now != was:
        return Cell("wrong → right", "up") if now else Cell("right → wrong", "down")
    return Cell("")


def _family(runs: list[R.ModelRun], task: str) -> str | None:
    return next((r.tasks[task].family for r in runs if task in r.tasks), None)


def choice_rows(base: R.ModelRun, others: list[R.ModelRun], tasks: list[str]) -> list[ChoiceRow]:
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
        rows.append(ChoiceRow(task, qid, ref.question, f"{_letter(ref.gold)}: {ref.choices[ref.gold]}", picks))
    return rows
