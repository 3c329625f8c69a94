"""The report's inputs and its view model: one self-contained HTML file (and optionally a Markdown summary and a
pull-request comment) comparing a base model, its adapter and every checkpoint (`fm5 report`:
fm5/commands/report.py).

The inputs are read here (lm-eval output folders through harness_ext.results, training runs through
harness_ext.run_layout); reports.sections turns them into the view model (reports.view) and its charts (reports.charts);
reports.render prints it. Python decides every number and label; the template only loops and prints.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from harness_ext import decontamination
from harness_ext import claims
from harness_ext import results
from harness_ext import run_layout
from harness_ext.errors import UsageError
from reports import question_tables, sections
from reports.charts import charts, forest
from reports.render import render_html, render_markdown  # noqa: F401 - callers print what they build
from reports.view import Report

# ------------------------------------------------------------------------------------------------------ inputs


@dataclass
class TrainingRun:
    path: Path
    state: dict | None
    run: run_layout.RunRecord | None


def _read_training(path: Path) -> TrainingRun:
    return TrainingRun(path, run_layout.read_state(path), run_layout.read_run(path))


def collect(paths: list[str]) -> tuple[list[results.ModelRun], list[TrainingRun]]:
    runs, trainings = [], []
    for raw in paths:
        path = Path(raw)
        if run_layout.is_training_run(path):
            trainings.append(_read_training(path))
            continue
        runs.extend(results.find_runs(path))
    if not runs:
        raise UsageError("no lm-eval results among the given paths: pass the output folders of lm_eval or fm5 eval")
    return runs, trainings


def _order(run: results.ModelRun) -> tuple[str, int]:
    """A training run's models in training order: its document stage, its checkpoints by step, its final adapter."""
    step = run_layout.checkpoint_step(run.label)
    return (run_layout.label_run(run.label),
            -1 if run_layout.label_is_document(run.label) else 1 << 60 if step is None else step)


def check_inputs(runs: list[results.ModelRun], trainings: list[TrainingRun]) -> tuple[list[str], list[str]]:
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
    for task in sections.task_names(runs):
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
    records = {}
    for run in runs:
        record = results.training_run(run)
        if record is not None:
            records.setdefault(run_layout.label_run(run.label), record)
    for tr in trainings:
        if tr.run:
            records.setdefault(tr.path.name, tr.run)
    # evaluated items keyed by (task, id): a question of one task is never read through another task's item (a
    # continuation-probe passage carries the id of its first held-out question)
    questions = {(t.task, q.id): q for r in runs for t in r.tasks.values() if t.family != "doc" for q in t.questions}
    passages = {(t.task, q.id): q for r in runs for t in r.tasks.values() if t.family == "doc" for q in t.questions}
    for label, record in records.items():
        train_ids = set(record.split.train_ids)
        for probe, items in ((decontamination.QUESTION_PROBES, questions),
                             (decontamination.CONTINUATION_PROBE, passages)):
            leaked = sorted({qid for _, qid in items if qid in train_ids})
            if leaked:
                warnings.append(f"CONTAMINATION, {probe}: {len(leaked)} evaluated item(s) are in the training data "
                                f"of {label} (e.g. {', '.join(leaked[:5])}); their scores measure memorisation")
        found, why_not = training_leaks(record, questions, passages)
        notes.extend(f"{label}: {reason}" for reason in why_not)
        for probe, rule, pairs in found:
            shown = "; ".join(f"{k} ~ {v[0]} ({v[1]})" for k, v in list(pairs.items())[:3])
            warnings.append(f"CONTAMINATION, {probe}: {len(pairs)} training text(s) of {label} break the rule "
                            f"fm5 train applies for it ({rule}), e.g. {shown}")
    if not warnings:
        notes.append("No partial runs, no version or backbone mismatch, no evaluated item (nor a near-duplicate of "
                     "one, for each probe's rule) in any training set at hand.")
    return warnings, notes


def _training_rows(record: run_layout.RunRecord) -> list[dict] | None:
    """The rows of the run's data file (a document file alone: its texts as rows), or None when it cannot be read."""
    from harness_ext import data

    if not record.data_path:
        return None
    try:
        if record.document_only:
            return data.text_rows(data.load_documents(record.data_path))
        return data.load_qa(record.data_path)
    except data.DataError:
        return None


def _document_texts(record: run_layout.RunRecord, rows: list[dict]) -> list[tuple[str, str]] | None:
    """``(text id, text)`` of what the run's document stage read (``fm5_run.json``'s ``document_text_ids``), or None
    when the record predates that list or its --document file is not at hand."""
    from harness_ext import data

    wanted = set((record.decontamination or {}).get("document_text_ids") or [])
    if not wanted:
        return None if record.corpus else []
    texts = [r["passage"] for r in rows if r["passage"].strip()]
    document = (record.corpus or {}).get("document") or {}
    if document.get("path"):
        try:
            texts += data.load_documents(document["path"])
        except data.DataError:
            return None
    found = {data.text_id(t.strip()): t.strip() for t in texts}
    if not wanted <= set(found):
        return None
    seen = set(record.split.test_seen_ids)  # the seen passages are read on purpose (data.document_corpus)
    exempt = {data.text_id(r["passage"].strip()) for r in rows if r["id"] in seen and r["passage"].strip()}
    return sorted((i, found[i]) for i in wanted - exempt)


def training_leaks(record: run_layout.RunRecord, questions: dict, passages: dict):
    """Each probe's decontamination rule (harness_ext.decontamination) recomputed on what the run read and what was
    evaluated: ([(probe, rule, {training text: (evaluated item, why)})] for the rules broken, [why a check could not
    run]). Question probes: the run's QA training rows against the evaluated questions. The continuation probe: the
    QA training rows' questions and answers and the document stage's texts against the sentences the probe scored in
    unseen passages (seen passages are meant to be read)."""
    from harness_ext import data
    from harness_ext.embeddings import embed

    unseen = [(q.id, s) for q in passages.values() if q.group == "unseen" for s in q.sentences]
    if not (questions or unseen) or not (record.split.train_ids or record.corpus):
        return [], []
    rows = _training_rows(record)
    if rows is None:
        return [], ["its data file is not at hand, so its training texts were not checked against either probe"]
    found, why_not = [], []
    train_ids = set(record.split.train_ids)
    trained = [r for r in rows if r["id"] in train_ids]
    if questions and trained:
        held = {q.id: {"id": q.id, "question": q.question, "answer": q.answer} for q in questions.values()}
        pairs = data.near_duplicates(trained, list(held.values()), embed)
        if pairs:
            found.append((decontamination.QUESTION_PROBES, "harness_ext.decontamination.near_duplicates", pairs))
    if unseen:
        texts = [(f"{r['id']} {f}", r[f]) for r in trained for f in ("question", "answer") if r[f].strip()]
        documents = _document_texts(record, rows)
        if documents is None:
            why_not.append("its document texts are not listed in its fm5_run.json (trained before the continuation "
                           "probe's rule) or its --document file is not at hand: they were not checked against the "
                           "continuation probe's unseen sentences")
        pairs = data.continuation_leaks(texts + (documents or []), unseen, embed)
        if pairs:
            found.append((decontamination.CONTINUATION_PROBE, "harness_ext.decontamination.continuation_leaks",
                          pairs))
    return found, why_not


def provenance(runs: list[results.ModelRun], trainings: list[TrainingRun]) -> list[tuple[str, str]]:
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
        r, alpha, targets = run.lora
        rows.append((f"training {tr.path.name}",
                     f"base {run.base_model} {run.gguf_file or ''}; LoRA r={r} alpha={alpha} on {targets}; "
                     f"data sha256 {(run.data_sha256 or '?')[:16]}; {len(run.split.train_ids)} train / "
                     f"{len(run.split.test_ids)} test ids; commit {run.git_commit}; {run.wall_time_s} s"))
        recipe = recipe_line(run)
        if recipe:
            rows.append(("  recipe", recipe))
    return rows


def recipe_line(run: run_layout.RunRecord) -> str | None:
    """How the run showed the text to the model (training.views, harness_ext.data.study), when not as written."""
    fm5 = (run.config or {}).get("fm5") or {}
    parts = []
    if fm5.get("document_views", "none") != "none":
        parts.append(f"document views: {fm5['document_views']}")
    if fm5.get("document_headings"):
        parts.append("a heading before every sentence")
    study = (run.decontamination or {}).get("study_questions")
    if study:
        dropped = ", ".join(f"{n} {rule}" for rule, n in sorted(study["dropped"].items())) or "none"
        parts.append(f"study questions: {study['kept']} trained of {study['built']} built (at most "
                     f"{study['per_text']} per text; dropped by the decontamination rules: {dropped})")
    return "; ".join(parts) or None


def declared_comparison(others: list[results.ModelRun], trainings: list[TrainingRun], override: str | None,
                        field: str = "primary") -> tuple[claims.Primary, str]:
    """A comparison of the verdict (``field``: ``primary``, the question line, or ``stored``, the continuation line),
    and how it was declared: `fm5 report --primary` / `--stored` (shown as such), else the training record of the
    evaluated adapters or of a given training run (declared before training), else the default."""
    if override:
        try:
            return claims.Primary.parse(override, f"--{field}"), f"set by fm5 report --{field} after the run, not " \
                                                           "declared before training"
        except ValueError as err:
            raise UsageError(str(err)) from None
    records = [(r.label, results.training_run(r)) for r in others] + [(t.path.name, t.run) for t in trainings]
    for name, record in records:
        if record is not None and getattr(record, field):
            try:
                return claims.Primary.parse(getattr(record, field), f"{name}: fm5_run.json field {field}"), \
                    f"declared before training ({name}, {record.declared_at or 'time not recorded'})"
            except ValueError as err:
                raise UsageError(str(err)) from None
    default = claims.Primary() if field == "primary" else claims.Primary("final", *claims.STORED)
    return default, "the default (no training record declares one)"


def build(paths: list[str], base_path: str | None = None, primary_text: str | None = None,
          stored_text: str | None = None) -> Report:
    runs, trainings = collect(paths)
    base = runs[0]
    if base_path:
        wanted = [r for r in runs if r.path.resolve() == Path(base_path).resolve()] or results.find_runs(base_path)
        base = wanted[0]
        if base not in runs:
            runs.insert(0, base)
    others = sorted((r for r in runs if r is not base), key=_order)
    runs = [base, *others]
    tasks = sections.task_names(runs)
    warnings, notes = check_inputs(runs, trainings)
    declared = [declared_comparison(others, trainings, stored_text, "stored"),
                declared_comparison(others, trainings, primary_text)]
    view = sections.knowledge_view(base, others, declared)
    groups = {}
    for run, task, metric, eff, is_declared in view.effects:
        groups.setdefault((task, metric), []).append((run.label, eff.did.value, eff.did.low, eff.did.high,
                                                      is_declared))
    histories = [(tr.path.name, (tr.state or {}).get("log_history", [])) for tr in trainings]
    return Report(
        title="FM 5-0 fine-tuning report",
        generated=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        base=base.label, models=[r.label for r in runs], warnings=warnings, notes=notes,
        summary=sections.summary_tables(base, others, tasks), knowledge=sections.knowledge_rows(base, others),
        verdict=view.verdict, verdict_lines=view.lines, did=view.did, closure=view.closure,
        transitions=view.transitions, knowledge_notes=view.notes, charts=charts(base, others, tasks, histories),
        forest=forest(groups), gains=sections.first_screen(base, view.effects, declared),
        questions=question_tables.question_rows(base, others, tasks),
        choices=question_tables.choice_rows(base, others, tasks),
        provenance=provenance(runs, trainings), flip_threshold=f"{question_tables.FLIP_THRESHOLD:.2f}",
        missing=[f"{r.label}/{t}" for r in runs for t in r.missing_samples],
    )
