"""The report's sections, built from the results reader (harness_ext.results) and the control-group arithmetic
(harness_ext.knowledge) into the view model's objects (reports.view): this module decides labels and formats, it
computes no statistic of its own."""

from __future__ import annotations

from dataclasses import dataclass

from harness_ext import ALL_TASKS
from harness_ext import claims, knowledge
from harness_ext import results
from harness_ext import run_layout
from harness_ext.stats import holm
from reports.charts import GainFigure, gains
from reports.view import (Cell, ClosureRow, DidRow, KnowledgeRow, MetricCell, SummaryLine, SummaryTable,
                          TransitionRow, Verdict, fmt, fmt_delta)

TASK_ORDER = ALL_TASKS
# (closed-book task, its open-book ceiling, metrics) for the knowledge view; the probe first: it separates knowledge
# from answer style, which F1 and perplexity do not
KNOWLEDGE = (("fm5_qa_mc_closed", "fm5_qa_mc_open", ("margin", "acc_pmi", "acc", "acc_norm")),
             ("fm5_qa_closed", "fm5_qa_open", ("f1", "bertscore_f1", "perplexity", "exact_match")))


def _delta_cell(metric: str, cmp) -> Cell:
    higher = results.METRICS[metric].higher_is_better
    better = cmp.delta > 0 if higher else cmp.delta < 0
    if not cmp.significant:
        return Cell(fmt_delta(metric, cmp.delta), "ns", "95 % interval includes zero")
    return Cell(fmt_delta(metric, cmp.delta) + (" ▲" if better else " ▼"), "up" if better else "down",
                "95 % interval excludes zero")


def task_names(runs: list[results.ModelRun]) -> list[str]:
    names = {t for r in runs for t in r.tasks}
    return [t for t in TASK_ORDER if t in names] + sorted(names - set(TASK_ORDER))


def summary_tables(base: results.ModelRun, others: list[results.ModelRun], tasks: list[str]) -> list[SummaryTable]:
    """Per task: one line per model, one cell per metric (value, delta to the baseline, 95 % interval)."""
    tables = []
    for task in tasks:
        tb = base.tasks.get(task)
        if tb is None:
            continue
        metrics = [(m, "↑ higher is better" if results.METRICS[m].higher_is_better else "↓ lower is better")
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
                cmp = knowledge.compare(tb, to, metric) if tb.questions and to.questions else None
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


def knowledge_rows(base: results.ModelRun, others: list[results.ModelRun]) -> list[KnowledgeRow]:
    rows = []
    for run, (closed, opened, metric_names) in ((r, k) for r in others for k in KNOWLEDGE):
        closed_b, closed_o, open_o = base.tasks.get(closed), run.tasks.get(closed), run.tasks.get(opened)
        if not (closed_b and closed_o and closed_b.questions and closed_o.questions):
            continue
        for metric in metric_names:
            cmp = knowledge.compare(closed_b, closed_o, metric) if metric in closed_b.aggregate else None
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


def _with_interval(metric: str, est: knowledge.Estimate) -> str:
    return f"{_fmt_est(metric, est.value)} [{_fmt_est(metric, est.low)}, {_fmt_est(metric, est.high)}]"


def primary_model(others: list[results.ModelRun], primary: claims.Primary) -> results.ModelRun | None:
    """The model the declared comparison is about: the first with that role in its training run (``final``,
    ``document``, ``checkpoint-N``), preferring one whose training record is at hand."""
    matching = [r for r in others if run_layout.label_role(r.label) == primary.model]
    return next((r for r in matching if results.training_run(r)), matching[0] if matching else None)


POST_HOC = "set by fm5 report"  # how declared_comparison's source starts for a comparison named after the run


def _split_differs(target: results.ModelRun, task: str, tr: results.TaskRun) -> str:
    """Why the evaluated split is not the one the target's training run recorded ("" when it is, or when there is
    no record): an evaluated item the record does not hold out, or (questions) a group the record gives otherwise."""
    record = results.training_run(target)
    if record is None or not (record.split.test_seen_ids or record.split.test_unseen_ids):
        return ""
    recorded = {**{i: "seen" for i in record.split.test_seen_ids}, **{i: "unseen" for i in record.split.test_unseen_ids}}
    outside = sorted(q.id for q in tr.questions if q.id not in recorded)
    # a continuation unit is a passage: unseen if any held-out row with that passage is, so only membership counts
    relabelled = [] if tr.family == "doc" else sorted(q.id for q in tr.questions if q.group and
                                                      recorded.get(q.id, q.group) != q.group)
    if not outside and not relabelled:
        return ""
    what = [f"{len(outside)} evaluated item(s) not held out by it (e.g. {', '.join(outside[:3])})"] if outside else []
    what += [f"{len(relabelled)} question(s) in another group (e.g. {', '.join(relabelled[:3])})"] if relabelled else []
    return (f"No verdict: {task} was evaluated on another split than {run_layout.label_run(target.label)}'s training "
            f"record ({'; '.join(what)}): evaluate with the split fm5_run.json records (fm5 eval does by default).")


def _line(base: results.ModelRun, others: list[results.ModelRun], comparison: claims.Primary, source: str,
          required: bool, n_permutations: int = knowledge.DEFAULT_PERMUTATIONS):
    """One declared comparison as a verdict line: (its Verdict, the model, the effect), or None when the comparison
    is optional (``required`` False: the stored line) and its task was not evaluated. No verdict when the split
    differs from the training record; a comparison named after the run is labelled post hoc and never coloured."""
    target = primary_model(others, comparison)
    tb, to = base.tasks.get(comparison.task), target.tasks.get(comparison.task) if target else None
    if target is None or (not required and not (tb and to)):
        return None
    differs = _split_differs(target, comparison.task, to) if to else ""
    eff = knowledge.effect(tb, to, comparison.metric, n_permutations=n_permutations) \
        if tb and to and comparison.metric in tb.aggregate and not differs else None
    sentence, css = (differs, claims.UNTESTED) if differs else claims.verdict(eff, comparison.metric, comparison.task)
    if source.startswith(POST_HOC) and css != claims.UNTESTED:
        sentence, css = f"Post hoc (named after the run, not a confirmatory test): {sentence}", "ns"
    return Verdict(target.label, str(comparison), source, sentence, css, claims.line_of(comparison.task)), target, eff


def verdict_of(base: results.ModelRun, others: list[results.ModelRun], declared: list[tuple[claims.Primary, str]],
               n_permutations: int = knowledge.DEFAULT_PERMUTATIONS):
    """The verdict: (headline, lines, {(model label, task, metric): (css, effect)} of the declared rows, notes).
    ``declared``: the stored comparison (continuation probe), then the usable one (the question probe, the run's
    ``primary``). Without the continuation probe's results the headline is the usable comparison alone, as it always
    was; with both, the lines are tested in a fixed sequence (stored first; usable only when stored holds) and the
    headline says the pair in plain words (post hoc, uncoloured, when either comparison was named after the run)."""
    (stored, stored_source), (usable, usable_source) = declared
    s = _line(base, others, stored, stored_source, False, n_permutations)
    u = _line(base, others, usable, usable_source, s is None, n_permutations)
    if s is None and u is None:
        return None, [], {}, [f"The declared comparison ({usable}) names no evaluated model: no verdict."]
    if s is None or u is None:
        (v, _, eff), comparison = (s, stored) if s else (u, usable)
        return v, [], {(v.model, comparison.task, comparison.metric): (v.css, eff)}, []
    (sv, _, seff), (uv, _, ueff) = s, u
    if sv.css != "up":
        told = "needs seen and unseen questions" if ueff is None else claims.describe(ueff, usable.metric, usable.task)
        uv = Verdict(uv.model, uv.comparison, uv.source, f"Not tested: the question line is tested only when the "
                     f"stored line holds (fixed sequence); {told}.", "ns", "usable")
    summary, css = claims.two_lines(sv.css, uv.css)
    if any(v.source.startswith(POST_HOC) for v in (sv, uv)):
        summary, css = f"Post hoc (a comparison named after the run): {summary}", "ns"
    headline = Verdict(sv.model if sv.model == uv.model else f"{sv.model}, {uv.model}",
                       f"{sv.comparison}, then {uv.comparison}",
                       sv.source if sv.source == uv.source else f"stored: {sv.source}; usable: {uv.source}", summary,
                       css)
    rows = {(sv.model, stored.task, stored.metric): (sv.css, seff),
            (uv.model, usable.task, usable.metric): (uv.css, ueff)}
    return headline, [sv, uv], rows, []


PROBE_TITLES = {"stored": "Stored? The continuation probe", "usable": "Usable? The question probe"}


def first_screen(base: results.ModelRun, effects: list[tuple],
                 declared: list[tuple[claims.Primary, str]]) -> list[GainFigure]:
    """The report's first screen: one figure per declared comparison that was evaluated (the stored line's probe,
    then the usable line's), each model's seen and unseen change from the base with the intervals of the verdict's
    tests (``knowledge_view``'s effects: the same numbers)."""
    figures = []
    for comparison, _ in declared:
        rows = [(run.label, eff) for run, task, metric, eff, _ in effects
                if (task, metric) == (comparison.task, comparison.metric)]
        if not rows:
            continue
        n_seen, n_unseen = rows[0][1].did.n_seen, rows[0][1].did.n_unseen
        unit = "passages" if base.tasks[comparison.task].family == "doc" else "questions"
        figure = gains(f"{PROBE_TITLES[claims.line_of(comparison.task)]}: {comparison.task} {comparison.metric}",
                       f"Change from the base ({base.label}) per model, with the 95 % intervals of the verdict's "
                       f"tests; {n_seen} seen / {n_unseen} unseen {unit}.",
                       [(label, {g: (e.value, e.low, e.high) for g, e in (("seen", eff.seen), ("unseen", eff.unseen))})
                        for label, eff in rows],
                       lambda v, metric=comparison.metric: fmt_delta(metric, v))
        figures.append(figure)
    return figures


@dataclass
class KnowledgeView:
    """The knowledge section: the verdict and its lines, the diff-in-diff rows, the gap closure, the probe's
    transitions, the notes, and the effects behind the rows (for the forest plot)."""

    verdict: Verdict | None
    lines: list[Verdict]
    did: list[DidRow]
    closure: list[ClosureRow]
    transitions: list[TransitionRow]
    notes: list[str]
    effects: list[tuple]  # (run, task, metric, knowledge.Effect, declared?)


def knowledge_view(base: results.ModelRun, others: list[results.ModelRun],
                   declared: list[tuple[claims.Primary, str]],
                   n_permutations: int = knowledge.DEFAULT_PERMUTATIONS) -> KnowledgeView:
    """The verdict (``verdict_of``); every model x metric as an exploratory diff-in-diff row (randomization p-values
    Holm-adjusted over the family, the declared rows apart); the gap closure; the probe's transitions.
    ``n_permutations`` per randomization test (the null simulation, bench/verdict_null.py, uses fewer)."""
    did_rows, closure_rows, transition_rows, notes = [], [], [], []
    missing = sorted({f"{r.label}/{t}" for r in [base, *others] for t, tr in r.tasks.items()
                      if tr.questions and not tr.has_groups})
    if missing:
        notes.append("No seen/unseen record in " + ", ".join(missing) + " (a run from before the control group, "
                     "or without samples): no diff-in-diff for those.")
    verdict, lines, declared_rows, verdict_notes = verdict_of(base, others, declared, n_permutations)
    notes += verdict_notes
    effects = []
    for run in others:
        for task, metric in knowledge.DID_METRICS:
            tb, to = base.tasks.get(task), run.tasks.get(task)
            if not (tb and to and metric in tb.aggregate):
                continue
            _, eff = declared_rows.get((run.label, task, metric), (None, None))  # a declared row: the verdict's numbers
            if eff is None:
                eff = knowledge.effect(tb, to, metric, n_permutations=n_permutations)
            if eff is not None:
                effects.append((run, task, metric, eff, (run.label, task, metric) in declared_rows))
    family = [i for i, e in enumerate(effects) if not e[4]]
    adjusted = dict(zip(family, holm([effects[i][3].p_did for i in family])))
    for i, (run, task, metric, eff, declared_row) in enumerate(effects):
        better = results.METRICS[metric].higher_is_better
        if declared_row:
            css, p_holm = declared_rows[(run.label, task, metric)][0], "declared"
        else:
            sign = (1 if eff.did.value > 0 else -1) * (1 if better else -1)
            css, p_holm = (_css(sign) if adjusted[i] < claims.ALPHA else "ns"), f"{adjusted[i]:.3g}"
        did_rows.append(DidRow(run.label, task, metric, "↑" if better else "↓", _with_interval(metric, eff.seen),
                               _with_interval(metric, eff.unseen),
                               Cell(_fmt_est(metric, eff.did.value), css,
                                    "significant" if css != "ns" else "not significant"),
                               f"[{_fmt_est(metric, eff.did.low)}, {_fmt_est(metric, eff.did.high)}]",
                               f"{eff.p_did:.3g}", p_holm, "declared" if declared_row else "exploratory"))

    for run in others:
        for task, tr in sorted(run.tasks.items()):
            differ = knowledge.group_mismatch(base.tasks[task], tr) if task in base.tasks else []
            if differ:
                notes.append(f"{run.label}/{task}: its seen/unseen groups differ from the baseline's on {len(differ)} "
                             f"question(s) (e.g. {', '.join(differ[:3])}): other split settings? Its diff-in-diff "
                             f"uses the baseline's groups and mixes them.")
        cb, cm, ob = base.tasks.get("fm5_qa_mc_closed"), run.tasks.get("fm5_qa_mc_closed"), \
            base.tasks.get("fm5_qa_mc_open")
        if cb and cm and ob and cb.has_groups and cm.has_groups:
            for metric in knowledge.CLOSURE_METRICS:
                est = knowledge.closure(cb, cm, ob, metric)
                if est is None:
                    break
                closure_rows.append(ClosureRow(
                    run.label, metric, Cell("n/a" if est.value != est.value else f"{est.value:+.2f}",
                                            _css(est.direction)),
                    est.note or f"[{est.low:+.2f}, {est.high:+.2f}]", str(est.n_seen)))
        if cb and cm and cb.has_groups and cm.has_groups:
            for group, t in knowledge.probe_transitions(cb, cm).items():
                transition_rows.append(TransitionRow(run.label, group, *(str(t[k]) for k in
                                                     ("learned", "forgotten", "still known", "still unknown"))))
        record = results.training_run(run)
        if record and cm and cm.has_groups:
            trained_seen = set(record.split.test_seen_ids)
            logged_seen = {q.id for q in cm.questions if q.group == "seen"}
            if trained_seen and not logged_seen <= trained_seen:
                notes.append(f"{run.label}: its training run's seen questions differ from the evaluated seen group "
                             f"(other split settings?); the diff-in-diff does not measure its document stage")
    return KnowledgeView(verdict, lines, did_rows, closure_rows, transition_rows, notes, effects)
