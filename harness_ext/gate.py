"""Regression gate: did a candidate model get worse than a baseline on the FM 5-0 tasks, beyond noise?

The decision rule only: reading is `results`, statistics are `stats`, the control group is `knowledge`, the settings
are `gate_config` (defaults and the checked gate YAML), the outputs `gate_report`; `fm5 gate` is
fm5/commands/gate.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness_ext import knowledge
from harness_ext import results
from harness_ext.errors import UsageError
from harness_ext.gate_config import DEFAULT_CONFIG, load_config  # noqa: F401 - the gate's settings, re-exported

RULE = """\
Decision rule. For each task and metric, over the questions both runs answered, the change is measured in the
metric's bad direction: worsening = baseline - candidate (higher-is-better metrics) or candidate - baseline
(perplexity). A paired bootstrap (the same resampled questions for both runs; >= 10,000 resamples, fixed seed;
corpus metrics such as perplexity are recomputed on every resample) gives a 95 % interval [lo, hi] of the
worsening. The tolerance is absolute, or relative to the baseline value (gate.yaml). A metric FAILS when
worsening > tolerance AND lo > tolerance, i.e. the whole interval lies beyond "no worse than tolerance";
otherwise it passes. Optional knowledge rule (gate.yaml `knowledge`): the same test on the difference-in-differences
(candidate - baseline) on seen questions minus (candidate - baseline) on unseen questions (the seen/unseen control
group of document training), i.e. the candidate's knowledge effect must not fall below the baseline's by more
than the tolerance; resampling within each group. Exit 0: every metric passes; 1: at least one fails; 2: unusable
input (missing task, metric or samples, different question sets without --allow-subset, a --limit run unless
allowed, different task versions or BERTScore backbones, seen/unseen groups that differ between the runs, no
seen/unseen record for the knowledge rule, unreadable files)."""


@dataclass
class Row:
    task: str
    metric: str
    higher_is_better: bool
    baseline: float
    candidate: float
    delta: float
    low: float
    high: float
    worsening: float
    tolerance: float
    mde: float
    n: int
    verdict: str  # "pass" | "fail"
    note: str


def _tolerance(config: dict, task: str, metric: str, base_value: float) -> float:
    spec = config["task_tolerance"].get(task, {}).get(metric) or config["tolerance"].get(metric) or {"absolute": 0}
    kind, value = next(iter(spec.items()))
    return float(value) * (abs(base_value) if kind == "relative" else 1.0)


def _check_runs(base: results.ModelRun, cand: results.ModelRun, config: dict,
                allow_subset: bool) -> tuple[dict, list[str]]:
    """Fail-closed checks; returns the question ids to compare per task and notes to print."""
    notes, shared = [], {}
    for run in (base, cand):
        if not config["allow_limit"] and (run.limit is not None or any(t.partial for t in run.tasks.values())):
            raise UsageError(f"{run.path}: a --limit run (limit={run.limit}); set allow_limit: true to gate on it")
    for task in config["tasks"]:
        for run in (base, cand):
            if task not in run.tasks:
                raise UsageError(f"{run.path}: task {task} missing")
            if task in run.missing_samples:
                raise UsageError(f"{run.path}: no samples_{task}_*.jsonl (run lm_eval with --log_samples)")
            wanted = _task_metrics(run.tasks[task], config)
            if not wanted:
                raise UsageError(f"{run.path}: none of the gate's metrics apply to task {task} "
                                 f"(it reports {', '.join(run.tasks[task].metrics)})")
            missing = [m for m in wanted if m not in run.tasks[task].aggregate]
            if missing:
                raise UsageError(f"{run.path}: task {task} lacks metric(s) {', '.join(missing)}")
        tb, tc = base.tasks[task], cand.tasks[task]
        if tb.version != tc.version:
            raise UsageError(f"{task}: task versions differ (baseline {tb.version}, candidate {tc.version})")
        if any(m in results.BERTSCORE for m in config["metrics"]) and tb.backbone != tc.backbone:
            raise UsageError(f"{task}: BERTScore backbones differ (baseline {tb.backbone}, candidate {tc.backbone})")
        ids_b, ids_c = set(tb.ids), set(tc.ids)
        if ids_b != ids_c:
            if not allow_subset:
                raise UsageError(
                    f"{task}: the runs answered different questions ({len(ids_b)} vs {len(ids_c)}, "
                    f"{len(ids_b & ids_c)} shared); pass --allow-subset to compare the shared ones"
                )
            notes.append(f"{task}: comparing the {len(ids_b & ids_c)} questions both runs answered "
                         f"(baseline {len(ids_b)}, candidate {len(ids_c)})")
        common = sorted(ids_b & ids_c)
        if not common:
            raise UsageError(f"{task}: the runs share no question")
        differ = knowledge.group_mismatch(tb, tc)
        if differ:
            raise UsageError(f"{task}: the runs' seen/unseen groups differ on {len(differ)} question(s) (e.g. "
                             f"{', '.join(differ[:3])}): other split settings? compare runs of one split")
        shared[task] = common
    return shared, notes


def _task_metrics(tr: results.TaskRun, config: dict) -> list[str]:
    """The configured metrics that the task's family reports (QA tasks: perplexity, F1...; the probe: acc...)."""
    return [m for m in config["metrics"] if tr.family in results.METRICS[m].families]


def evaluate(base: results.ModelRun, cand: results.ModelRun, config: dict,
             allow_subset: bool = False) -> tuple[list[Row], list[str]]:
    shared, notes = _check_runs(base, cand, config, allow_subset)
    rows = []
    for task, ids in shared.items():
        for metric in _task_metrics(base.tasks[task], config):
            higher = results.METRICS[metric].higher_is_better
            cmp = knowledge.compare(base.tasks[task], cand.tasks[task], metric, ids, int(config["resamples"]),
                            int(config["seed"]))
            sign = 1.0 if higher else -1.0
            worsening = -sign * cmp.delta
            worse_low = min(-sign * cmp.low, -sign * cmp.high)
            tol = _tolerance(config, task, metric, cmp.base)
            failed = worsening > tol and worse_low > tol
            note = "" if cmp.mde <= tol else f"n={cmp.n} too small to detect a change of {tol:.4g} (MDE {cmp.mde:.4g})"
            rows.append(Row(task, metric, higher, cmp.base, cmp.candidate, cmp.delta, cmp.low, cmp.high, worsening,
                            tol, cmp.mde, cmp.n, "fail" if failed else "pass", note))
    if config["knowledge"]:
        rows.append(_knowledge_row(base, cand, config))
    return rows, notes


def _knowledge_row(base: results.ModelRun, cand: results.ModelRun, config: dict) -> Row:
    """The knowledge rule: baseline and candidate are each "seen - unseen" gaps; delta is the diff-in-diff."""
    rule = config["knowledge"]
    task, metric = rule["task"], rule["metric"]
    for run in (base, cand):
        tr = run.tasks.get(task)
        if tr is None or metric not in tr.aggregate:
            raise UsageError(f"{run.path}: knowledge rule: task {task} with metric {metric} missing")
        if not tr.has_groups:
            raise UsageError(f"{run.path}: knowledge rule: {task} has no seen/unseen record (a run from before the "
                             f"control group?)")
    eff = knowledge.effect(base.tasks[task], cand.tasks[task], metric, int(config["resamples"]), int(config["seed"]))
    if eff is None:
        raise UsageError(f"{task}: knowledge rule needs seen and unseen questions in both runs")
    est = eff.did
    higher = results.METRICS[metric].higher_is_better
    sign = 1.0 if higher else -1.0
    worsening, worse_low = -sign * est.value, min(-sign * est.low, -sign * est.high)
    tol = _tolerance({"task_tolerance": {}, "tolerance": {metric: rule["tolerance"]}}, task, metric, eff.base_gap)
    failed = worsening > tol and worse_low > tol
    return Row(task, f"{metric} seen-unseen (knowledge)", higher, eff.base_gap, eff.model_gap, est.value, est.low,
               est.high, worsening, tol, float("nan"),
               est.n_seen + est.n_unseen, "fail" if failed else "pass",
               f"diff-in-diff over {est.n_seen} seen / {est.n_unseen} unseen questions")


# ------------------------------------------------------------------------------------------------------ outputs


def single_run(path: str, role: str) -> results.ModelRun:
    """The one model's output folder a --baseline / --candidate names (a folder of several is an error)."""
    runs = results.find_runs(path)
    if len(runs) != 1:
        labels = ", ".join(r.path.name for r in runs)
        raise UsageError(f"{path}: --{role} must be one model's output folder; it holds {len(runs)} ({labels})")
    return runs[0]


def decide(rows: list[Row]) -> str:
    """The gate's outcome over its rows: "fail" when any row fails, else "pass"."""
    return "fail" if any(r.verdict == "fail" for r in rows) else "pass"
