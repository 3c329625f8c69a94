"""`fm5 report`: one self-contained HTML file (and optionally a Markdown summary) comparing a base model, its
adapter and every checkpoint.

Python collects and computes everything into plain data objects, with every number already formatted and every
label decided; the Jinja2 template only loops and prints (autoescape on, StrictUndefined, nothing marked safe).
"""

from __future__ import annotations

import datetime
import functools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness_ext import ALL_TASKS
from harness_ext import knowledge as K
from harness_ext import results as R
from harness_ext import runs as run_layout
from harness_ext.errors import UsageError
from harness_ext.files import write_atomic
from harness_ext.stats import paired_bootstrap

FLIP_THRESHOLD = 0.5  # F1 at or above this counts as "right" for the flip columns
TASK_ORDER = ALL_TASKS
# (closed-book task, its open-book ceiling, metrics) for the knowledge view; the probe first: it separates knowledge
# from answer style, which F1 and perplexity do not
KNOWLEDGE = (("fm5_qa_mc_closed", "fm5_qa_mc_open", ("margin", "acc_pmi", "acc", "acc_norm")),
             ("fm5_qa_closed", "fm5_qa_open", ("f1", "bertscore_f1", "perplexity", "exact_match")))
CHART_METRICS = ("margin", "f1", "perplexity", "bertscore_f1")
CHART_W, CHART_H, PAD = 420, 180, 34


# ------------------------------------------------------------------------------------------------ data objects


@dataclass
class Cell:
    text: str
    css: str = ""
    title: str = ""


@dataclass
class MetricCell:
    value: str
    delta: Cell
    interval: str


@dataclass
class SummaryLine:
    model: str
    cells: list[MetricCell]


@dataclass
class SummaryTable:
    task: str
    metrics: list[tuple[str, str]]  # (name, direction)
    lines: list[SummaryLine]
    n: str
    mde: list[str]  # per metric, at this n (from the last model's comparison)


@dataclass
class KnowledgeRow:
    model: str
    task: str
    metric: str
    closed_base: str
    closed_model: str
    gain: Cell
    interval: str
    open_model: str


@dataclass
class Verdict:
    model: str
    sentence: str
    css: str  # "up" learned, "down" worse, "ns" no evidence


@dataclass
class DidRow:
    model: str
    task: str
    metric: str
    direction: str
    seen_gain: str  # model - base on seen questions
    unseen_gain: str
    did: Cell
    interval: str


@dataclass
class ClosureRow:
    model: str
    metric: str
    value: Cell
    interval: str
    n: str


@dataclass
class TransitionRow:
    model: str
    group: str
    learned: str
    forgotten: str
    still_known: str
    still_unknown: str


@dataclass
class Series:
    name: str
    points: str  # "x,y x,y ..." in SVG coordinates
    css: str
    dots: list[tuple[str, str, str]]  # (cx, cy, tooltip)


@dataclass
class Chart:
    title: str
    y_label: str
    series: list[Series]
    x_ticks: list[tuple[str, str]]  # (x, label)
    y_ticks: list[tuple[str, str]]
    note: str = ""
    width: int = CHART_W
    height: int = CHART_H
    axis_x: int = PAD  # where the y axis stands
    axis_y: int = CHART_H - PAD  # where the x axis stands
    axis_end_x: int = CHART_W - 6
    label_y: int = CHART_H - PAD + 14  # x tick labels
    caption_x: int = CHART_W // 2  # the "step" caption
    caption_y: int = CHART_H - 4


@dataclass
class Answer:
    text: str
    f1: str
    bertscore: str
    nll: str
    flip: Cell


@dataclass
class QuestionRow:
    task: str
    id: str
    question: str
    gold: str
    answers: list[Answer]
    sort_key: str


@dataclass
class Pick:
    """One model's choice on one probe question."""
    text: str  # "B: option text"
    correct: Cell
    margin: str
    flip: Cell


@dataclass
class ChoiceRow:
    task: str
    id: str
    question: str
    gold: str  # "A: gold answer"
    picks: list[Pick]


@dataclass
class Report:
    title: str
    generated: str
    base: str
    models: list[str]
    warnings: list[str]
    notes: list[str]
    summary: list[SummaryTable]
    knowledge: list[KnowledgeRow]
    verdicts: list[Verdict]
    did: list[DidRow]
    closure: list[ClosureRow]
    transitions: list[TransitionRow]
    knowledge_notes: list[str]
    charts: list[Chart]
    question_models: list[str]
    questions: list[QuestionRow]
    choices: list[ChoiceRow]
    provenance: list[tuple[str, str]]
    flip_threshold: str
    has_samples: bool = True
    missing: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------------ inputs


@dataclass
class TrainingRun:
    path: Path
    state: dict | None
    run: dict | None


def _read_training(path: Path) -> TrainingRun:
    return TrainingRun(path, run_layout.read_state(path), run_layout.read_run(path))


def collect(paths: list[str]) -> tuple[list[R.ModelRun], list[TrainingRun]]:
    runs, trainings = [], []
    for raw in paths:
        path = Path(raw)
        if run_layout.is_training_run(path):
            trainings.append(_read_training(path))
            continue
        runs.extend(R.find_runs(path))
    if not runs:
        raise UsageError("no lm-eval results among the given paths: pass the output folders of lm_eval or fm5 eval")
    return runs, trainings


# ----------------------------------------------------------------------------------------------------- formats


def _letter(i: int) -> str:
    return chr(ord("A") + i) if 0 <= i < 26 else str(i + 1)


def fmt(metric: str, x: float) -> str:
    return "n/a" if x != x else (f"{x:.2f}" if metric == "perplexity" else f"{x:.3f}")


def fmt_delta(metric: str, x: float) -> str:
    return f"{x:+.2f}" if metric == "perplexity" else f"{x:+.3f}"


def _delta_cell(metric: str, cmp) -> Cell:
    higher = R.METRICS[metric].higher_is_better
    better = cmp.delta > 0 if higher else cmp.delta < 0
    if not cmp.significant:
        return Cell(fmt_delta(metric, cmp.delta), "ns", "95 % interval includes zero")
    return Cell(fmt_delta(metric, cmp.delta) + (" ▲" if better else " ▼"), "up" if better else "down",
                "95 % interval excludes zero")


# --------------------------------------------------------------------------------------------------- sections


def _shared_ids(base: R.TaskRun, other: R.TaskRun) -> list[str]:
    return sorted(set(base.ids) & set(other.ids))


def _compare(base: R.TaskRun, other: R.TaskRun, metric: str):
    ids = _shared_ids(base, other)
    if not ids:
        return None
    kind = R.bootstrap_kind(metric)
    b = dict(zip(base.ids, R.per_question(base, metric)))
    o = dict(zip(other.ids, R.per_question(other, metric)))
    return paired_bootstrap(kind, [b[i] for i in ids], [o[i] for i in ids])


def _tasks(runs: list[R.ModelRun]) -> list[str]:
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
                cmp = _compare(tb, to, metric) if tb.questions and to.questions else None
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
            cmp = _compare(closed_b, closed_o, metric) if metric in closed_b.aggregate else None
            if cmp is None:
                continue
            rows.append(KnowledgeRow(
                run.label, closed, metric, fmt(metric, cmp.base), fmt(metric, cmp.candidate), _delta_cell(metric, cmp),
                f"[{fmt_delta(metric, cmp.low)}, {fmt_delta(metric, cmp.high)}]",
                fmt(metric, open_o.aggregate[metric]) if open_o and metric in open_o.aggregate else "n/a"))
    return rows


def _group_values(tb: R.TaskRun, to: R.TaskRun, metric: str) -> dict[str, tuple[list, list]] | None:
    """{"seen": (base values, model values), "unseen": (...)} over the questions both answered, or None when a run
    has no seen/unseen record."""
    if not (tb.has_groups and to.has_groups):
        return None
    b = {q.id: (q.group, v) for q, v in zip(tb.questions, R.per_question(tb, metric))}
    o = dict(zip(to.ids, R.per_question(to, metric)))
    out = {"seen": ([], []), "unseen": ([], [])}
    for qid in sorted(set(b) & set(o)):
        group, value = b[qid]
        out[group][0].append(value)
        out[group][1].append(o[qid])
    return out if out["seen"][0] and out["unseen"][0] else None


def _fmt_est(metric: str, value: float) -> str:
    return "n/a" if value != value else fmt_delta(metric, value)


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
            groups = _group_values(tb, to, metric)
            if groups is None:
                continue
            (bs, ms), (bu, mu) = groups["seen"], groups["unseen"]
            est = K.diff_in_diff(metric, bs, ms, bu, mu)
            seen_gain = R.corpus_value(metric, ms) - R.corpus_value(metric, bs)
            unseen_gain = R.corpus_value(metric, mu) - R.corpus_value(metric, bu)
            better = R.METRICS[metric].higher_is_better
            good = est.direction * (1 if better else -1)
            css = "up" if good > 0 else "down" if good < 0 else "ns"
            did_rows.append(DidRow(run.label, task, metric, "↑" if better else "↓", _fmt_est(metric, seen_gain),
                                   _fmt_est(metric, unseen_gain),
                                   Cell(_fmt_est(metric, est.value), css, "95 % interval excludes zero" if css != "ns"
                                        else "95 % interval includes zero"),
                                   f"[{_fmt_est(metric, est.low)}, {_fmt_est(metric, est.high)}]"))
            if (task, metric) == K.PRIMARY:
                primary = est
        sentence = K.verdict(primary)
        css = "ns" if primary is None else {1: "up", -1: "down", 0: "ns"}[primary.direction]
        verdicts.append(Verdict(run.label, sentence, css))

        cb, cm, ob = base.tasks.get("fm5_qa_mc_closed"), run.tasks.get("fm5_qa_mc_closed"), \
            base.tasks.get("fm5_qa_mc_open")
        if cb and cm and ob and cb.has_groups and cm.has_groups:
            seen = sorted(set(q.id for q in cb.questions if q.group == "seen") & set(cm.ids) & set(ob.ids))
            for metric in K.CLOSURE_METRICS:
                if not seen:
                    break
                vals = [dict(zip(t.ids, R.per_question(t, metric))) for t in (cb, cm, ob)]
                est = K.gap_closure(*([v[i] for i in seen] for v in vals))
                css = {1: "up", -1: "down", 0: "ns"}[est.direction]
                closure_rows.append(ClosureRow(run.label, metric, Cell("n/a" if est.value != est.value else
                                                                       f"{est.value:+.2f}", css),
                                               "n/a (the passage does not help the base)" if est.low != est.low else
                                               f"[{est.low:+.2f}, {est.high:+.2f}]", str(len(seen))))
            b_right = {q.id: (q.group, q.picked == q.gold) for q in cb.questions}
            m_right = {q.id: q.picked == q.gold for q in cm.questions}
            for group in ("seen", "unseen"):
                ids = sorted(i for i, (g, _) in b_right.items() if g == group and i in m_right)
                t = K.transitions([b_right[i][1] for i in ids], [m_right[i] for i in ids])
                transition_rows.append(TransitionRow(run.label, group, *(str(t[k]) for k in
                                                     ("learned", "forgotten", "still known", "still unknown"))))
        record = R.training_run(run)
        if record and cm and cm.has_groups:
            trained_seen = set(record.get("split", {}).get("test_seen_ids", []))
            logged_seen = {q.id for q in cm.questions if q.group == "seen"}
            if trained_seen and not logged_seen <= trained_seen:
                notes.append(f"{run.label}: its training run's seen questions differ from the evaluated seen group "
                             f"(other split settings?); the diff-in-diff does not measure its document stage")
    return verdicts, did_rows, closure_rows, transition_rows, notes


def _scale(values: list[float], lo_px: float, hi_px: float):
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        lo, hi = lo - 1, hi + 1
    return lambda v: lo_px + (v - lo) / (hi - lo) * (hi_px - lo_px), lo, hi


def _chart(title: str, y_label: str, lines: dict[str, list[tuple[float, float]]], note: str = "") -> Chart | None:
    lines = {k: sorted(v) for k, v in lines.items() if v}
    if not lines:
        return None
    xs = [x for pts in lines.values() for x, _ in pts]
    ys = [y for pts in lines.values() for _, y in pts]
    sx, x_lo, x_hi = _scale(xs, PAD + 6, CHART_W - 10)
    sy, y_lo, y_hi = _scale(ys, CHART_H - PAD, 12)
    series = []
    for i, (name, pts) in enumerate(lines.items()):
        coords = [(sx(x), sy(y)) for x, y in pts]
        series.append(Series(
            name, " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords), f"s{i % 4}",
            [(f"{cx:.1f}", f"{cy:.1f}", f"{name}: step {x:g}, {y:.4g}") for (cx, cy), (x, y) in zip(coords, pts)]))
    x_ticks = [(f"{sx(x):.1f}", f"{x:g}") for x in sorted(set(xs))][:12]
    y_ticks = [(f"{sy(v):.1f}", f"{v:.3g}") for v in (y_lo, (y_lo + y_hi) / 2, y_hi)]
    return Chart(title, y_label, series, x_ticks, y_ticks, note)


def _order(run: R.ModelRun) -> tuple[str, int]:
    """A training run's models in training order: its document stage, its checkpoints by step, its final adapter."""
    step = run_layout.checkpoint_step(run.label)
    return (run_layout.label_run(run.label),
            -1 if run_layout.label_is_document(run.label) else 1 << 60 if step is None else step)


def charts(base: R.ModelRun, others: list[R.ModelRun], trainings: list[TrainingRun]) -> list[Chart]:
    out = []
    for tr in trainings:
        history = (tr.state or {}).get("log_history", [])
        loss = {"train loss": [(e["step"], e["loss"]) for e in history if "loss" in e and "step" in e],
                "eval loss": [(e["step"], e["eval_loss"]) for e in history if "eval_loss" in e and "step" in e]}
        c = _chart(f"Loss by step: {tr.path.name}", "loss (nats/token)", loss)
        if c:
            out.append(c)
    # one line per training run and task: the steps of two runs are not one curve
    checkpoints = [(run_layout.label_run(r.label), s, r) for r in others
                   if (s := run_layout.checkpoint_step(r.label)) is not None]
    names = sorted({name for name, _, _ in checkpoints})
    if checkpoints:
        for metric in CHART_METRICS:
            lines = {}
            for task, name in ((t, n) for t in _tasks([base, *others]) for n in names):
                if _family([base, *others], task) != R.METRICS[metric].family:
                    continue
                tb = base.tasks.get(task)
                pts = [(0.0, tb.aggregate[metric])] if tb and metric in tb.aggregate else []
                pts += [(float(s), r.tasks[task].aggregate[metric]) for n, s, r in checkpoints
                        if n == name and task in r.tasks and metric in r.tasks[task].aggregate]
                lines[task if len(names) == 1 else f"{name}: {task}"] = pts
            c = _chart(f"{metric} by checkpoint", metric, lines, "step 0 is the base model")
            if c:
                out.append(c)
    return out


def question_rows(base: R.ModelRun, others: list[R.ModelRun], tasks: list[str]) -> list[QuestionRow]:
    """The QA tasks' table: each model's generated answer, F1, BERTScore, NLL per token, flips by F1."""
    rows = []
    models = [base, *others]
    for task in tasks:
        if _family(models, task) != "qa":
            continue
        by_model = _by_model(models, task)
        for qid in sorted(set().union(*[set(m) for m in by_model])):
            ref = next(m[qid] for m in by_model if qid in m)
            base_q = by_model[0].get(qid)
            answers = []
            for i, m in enumerate(by_model):
                q = m.get(qid)
                if q is None:
                    answers.append(Answer("(not evaluated)", "", "", "", Cell("")))
                    continue
                flip = _flip(base_q.f1 >= FLIP_THRESHOLD, q.f1 >= FLIP_THRESHOLD) if i and base_q else Cell("")
                answers.append(Answer(q.prediction, f"{q.f1:.2f}", f"{q.bertscore[2]:.3f}" if q.bertscore else "",
                                      f"{q.nll / max(q.tokens, 1):.2f}", flip))
            rows.append(QuestionRow(task, qid, ref.question, ref.answer, answers, f"{task}:{qid}"))
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
    models = [base, *others]
    for task in tasks:
        if _family(models, task) != "mc":
            continue
        by_model = _by_model(models, task)
        for qid in sorted(set().union(*[set(m) for m in by_model])):
            ref = next(m[qid] for m in by_model if qid in m)
            base_q = by_model[0].get(qid)
            picks = []
            for i, m in enumerate(by_model):
                q = m.get(qid)
                if q is None:
                    picks.append(Pick("(not evaluated)", Cell(""), "", Cell("")))
                    continue
                right = q.picked == q.gold
                flip = _flip(base_q.picked == base_q.gold, right) if i and base_q else Cell("")
                picks.append(Pick(f"{_letter(q.picked)}: {q.prediction}", Cell("✓", "up") if right else Cell("✗", "down"),
                                  f"{q.values['margin']:+.2f}", flip))
            rows.append(ChoiceRow(task, qid, ref.question, f"{_letter(ref.gold)}: {ref.choices[ref.gold]}", picks))
    return rows


def check_inputs(runs: list[R.ModelRun], trainings: list[TrainingRun]) -> tuple[list[str], list[str]]:
    """Loud warnings (things that make numbers misleading) and plain notes."""
    warnings, notes = [], []
    limited = [f"{r.label} (limit={r.limit:g})" if r.limit is not None else r.label for r in runs
               if r.limit is not None or any(t.partial for t in r.tasks.values())]
    if limited:
        warnings.append(f"--limit runs, which cover only part of the test split: {', '.join(limited)}")
    for run in runs:
        for task in run.missing_samples:
            warnings.append(f"{run.label}: no samples file for {task} (run lm_eval with --log_samples): aggregate "
                            f"scores only, no intervals or per-question rows")
    for task in _tasks(runs):
        present = [r for r in runs if task in r.tasks]
        versions = {r.tasks[task].version for r in present}
        if len(versions) > 1:
            warnings.append(f"{task}: task versions differ between models ({', '.join(sorted(versions))}); "
                            f"scores may not be comparable")
        backbones = {r.tasks[task].backbone for r in present}
        if len(backbones) > 1:
            warnings.append(f"{task}: BERTScore backbones differ ({', '.join(sorted(map(str, backbones)))}); "
                            f"BERTScore columns are not comparable")
        id_sets = {tuple(r.tasks[task].ids) for r in present if r.tasks[task].questions}
        if len(id_sets) > 1:
            warnings.append(f"{task}: models were evaluated on different question sets; deltas use the shared ones")
    train_ids = {}
    for run in runs:
        ids = R.training_ids(run)
        if ids:
            train_ids[run.label] = ids
    for tr in trainings:
        if tr.run:
            train_ids.setdefault(tr.path.name, set(tr.run.get("split", {}).get("train_ids", [])))
    evaluated = {q.id for r in runs for t in r.tasks.values() for q in t.questions}
    for label, ids in train_ids.items():
        leaked = sorted(evaluated & ids)
        if leaked:
            warnings.append(f"CONTAMINATION: {len(leaked)} evaluated question(s) are in the training data of "
                            f"{label} (e.g. {', '.join(leaked[:5])}); their scores measure memorisation")
    if not warnings:
        notes.append("No partial runs, no version or backbone mismatch, no evaluated question in any training set.")
    return warnings, notes


def provenance(runs: list[R.ModelRun], trainings: list[TrainingRun]) -> list[tuple[str, str]]:
    rows = []
    for run in runs:
        args = ", ".join(f"{k}={v}" for k, v in sorted(run.model_args.items()))
        rows.append((f"model {run.label}", f"{args} (lm-eval {run.lm_eval_version}, {run.path})"))
        for task, tr in sorted(run.tasks.items()):
            rows.append((f"  {task}", f"version {tr.version}, {tr.n_effective} of {tr.n_original} questions, "
                                      f"BERTScore {tr.backbone}, data sha256 {(tr.data_sha256 or '?')[:16]}"))
    for tr in trainings:
        if not tr.run:
            continue
        run = tr.run
        adapter = run.get("adapter", {})
        rows.append((f"training {tr.path.name}",
                     f"base {run.get('base_model', {}).get('model_name_or_path')} "
                     f"{run.get('base_model', {}).get('gguf_file') or ''}; LoRA r={adapter.get('r')} "
                     f"alpha={adapter.get('lora_alpha')} on {adapter.get('target_modules')}; "
                     f"data sha256 {(run['data'].get('sha256') or '?')[:16]}; "
                     f"{len(run.get('split', {}).get('train_ids', []))} train / "
                     f"{len(run.get('split', {}).get('test_ids', []))} test ids; commit {run.get('git_commit')}; "
                     f"{run.get('wall_time_s')} s"))
    return rows


def build(paths: list[str], base_path: str | None = None) -> Report:
    runs, trainings = collect(paths)
    base = runs[0]
    if base_path:
        wanted = [r for r in runs if r.path.resolve() == Path(base_path).resolve()] or R.find_runs(base_path)
        base = wanted[0]
        if base not in runs:
            runs.insert(0, base)
    others = sorted((r for r in runs if r is not base), key=_order)
    runs = [base, *others]
    tasks = _tasks(runs)
    warnings, notes = check_inputs(runs, trainings)
    has_samples = all(t.questions for r in runs for t in r.tasks.values())
    verdicts, did_rows, closure_rows, transition_rows, knowledge_notes = knowledge_view(base, others)
    return Report(
        title="FM 5-0 fine-tuning report",
        generated=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        base=base.label, models=[r.label for r in runs], warnings=warnings, notes=notes,
        summary=summary_tables(base, others, tasks), knowledge=knowledge_rows(base, others), verdicts=verdicts,
        did=did_rows, closure=closure_rows, transitions=transition_rows, knowledge_notes=knowledge_notes,
        charts=charts(base, others, trainings), question_models=[r.label for r in [base, *others]],
        questions=question_rows(base, others, tasks), choices=choice_rows(base, others, tasks), provenance=provenance(runs, trainings),
        flip_threshold=f"{FLIP_THRESHOLD:.2f}", has_samples=has_samples,
        missing=[f"{r.label}/{t}" for r in runs for t in r.missing_samples],
    )


# ----------------------------------------------------------------------------------------------------- output


@functools.lru_cache(maxsize=1)
def _template():
    """The report template, compiled once per process (Jinja's own template cache lives in its Environment)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2")


def render_html(report: Report) -> str:
    return _template().render(r=report)


def render_markdown(report: Report) -> str:
    lines = [f"### {report.title}", "", f"Baseline: `{report.base}`.", ""]
    lines += [f"- **{v.model}**: {v.sentence}" for v in report.verdicts] + ([""] if report.verdicts else [])
    lines += [f"> ⚠️ {w}" for w in report.warnings] + ([""] if report.warnings else [])
    for table in report.summary:
        lines += [f"**{table.task}** (n = {table.n})", "",
                  "| model | " + " | ".join(m for m, _ in table.metrics) + " |",
                  "|---|" + "---:|" * len(table.metrics)]
        for line in table.lines:
            cells = [c.value if c.delta.css == "base" else f"{c.value} ({c.delta.text})" for c in line.cells]
            lines.append(f"| {line.model} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def add_arguments(p) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="an `fm5 eval` or `lm_eval --output_path` folder (one model or a sweep of several), and a "
                        "training output_dir to read its fm5_run.json (seen/unseen ids, checkpoint order)")
    p.add_argument("-o", "--output", required=True, help="HTML file to write")
    p.add_argument("--base", help="which PATH is the baseline (default: the first model)")
    p.add_argument("--markdown", help="also write the summary table as Markdown")


def main(args) -> int:
    report = build(args.paths, args.base)
    html = render_html(report)
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    write_atomic(args.output, html)
    if args.markdown:
        write_atomic(args.markdown, render_markdown(report))
    print(f"report written to {args.output}")
    return 0
