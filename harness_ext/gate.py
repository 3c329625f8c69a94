"""Regression gate: did a candidate model get worse than a baseline on the FM 5-0 tasks, beyond noise?

Decisions only; reading is `results`, statistics are `stats`, the control group is `knowledge`. Over 350 lines on
purpose: the rule, the checked gate YAML and the four outputs (table, JSON, JUnit, Markdown) are one contract.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path

from harness_ext import knowledge as K
from harness_ext import markdown as md
from harness_ext import results as R
from harness_ext.errors import Fm5Error, UsageError
from harness_ext.files import load_yaml, number, write_atomic
from harness_ext.stats import DEFAULT_RESAMPLES, DEFAULT_SEED

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

DEFAULT_CONFIG = {
    "tasks": ["fm5_qa_open", "fm5_qa_closed"],  # add fm5_qa_mc_open / _closed to gate the probe (gate_mc.yaml)
    "metrics": list(R.METRICS),
    "resamples": DEFAULT_RESAMPLES,
    "seed": DEFAULT_SEED,
    "allow_limit": False,
    "tolerance": {
        "perplexity": {"relative": 0.05},
        "exact_match": {"absolute": 0.02},
        "f1": {"absolute": 0.02},
        "bertscore_precision": {"absolute": 0.01},
        "bertscore_recall": {"absolute": 0.01},
        "bertscore_f1": {"absolute": 0.01},
        "acc": {"absolute": 0.05},
        "acc_norm": {"absolute": 0.05},
        "acc_pmi": {"absolute": 0.05},
        "margin": {"absolute": 0.1},
    },
    "task_tolerance": {},  # e.g. {fm5_qa_closed: {f1: {absolute: 0.03}}}
    # off by default; e.g. {task: fm5_qa_mc_closed, metric: margin, tolerance: {absolute: 0.1}}: the candidate's
    # knowledge effect (seen minus unseen gap) must not fall below the baseline's by more than the tolerance
    "knowledge": None,
}


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


def load_config(path: str | None) -> dict:
    """The built-in defaults, updated by a gate YAML; every key checked (one line naming the file and field)."""
    config = json.loads(json.dumps(DEFAULT_CONFIG))
    if not path:
        return config
    import yaml

    try:
        user = load_yaml(Path(path).read_bytes().decode("utf-8"))
    except OSError as err:
        raise UsageError(f"{path}: cannot read the gate config ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: the gate config is not UTF-8 (byte {err.start})") from None
    except (yaml.YAMLError, RecursionError) as err:
        raise UsageError(f"{path}: unreadable gate config ({str(err).splitlines()[0] or 'nested too deeply'})") \
            from None
    user = {} if user is None else user
    if not isinstance(user, dict):
        raise UsageError(f"{path}: a gate config is a mapping of settings (see examples/gate.yaml), not "
                         f"{type(user).__name__}")
    unknown = [k for k in user if k not in config]
    if unknown:
        raise UsageError(f"{path}: unknown gate config keys {sorted(map(str, unknown))}; known: {sorted(config)}")
    for key, value in user.items():
        where = f"{path}: field {key}"
        if key == "tasks":
            config[key] = _names(value, where)
        elif key == "metrics":
            config[key] = [_metric(m, where) for m in _names(value, where)]
        elif key == "resamples":
            config[key] = _integer(value, where, 10_000, 1_000_000)
        elif key == "seed":
            config[key] = _integer(value, where, 0, 2 ** 32 - 1)
        elif key == "allow_limit":
            if not isinstance(value, bool):
                raise UsageError(f"{where}: expected true or false, got {value!r:.40}")
            config[key] = value
        elif key == "tolerance":
            config[key].update({_metric(m, where): _spec(v, f"{where}.{m}") for m, v in _mapping(value, where).items()})
        elif key == "task_tolerance":
            config[key] = {str(t): {_metric(m, f"{where}.{t}"): _spec(v, f"{where}.{t}.{m}")
                                    for m, v in _mapping(specs, f"{where}.{t}").items()}
                           for t, specs in _mapping(value, where).items()}
        elif key == "knowledge" and value is not None:
            rule = _mapping(value, where)
            if set(rule) - {"task", "metric", "tolerance"} or "metric" not in rule:
                raise UsageError(f"{where}: must be {{task: T, metric: M, tolerance: {{absolute: X}}}}")
            config[key] = {"task": _names([rule.get("task", K.PRIMARY[0])], f"{where}.task")[0],
                           "metric": _metric(rule["metric"], f"{where}.metric"),
                           "tolerance": _spec(rule.get("tolerance", {"absolute": 0}), f"{where}.tolerance")}
    return config


def _mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _names(value, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.isprintable() and v for v in value):
        raise UsageError(f"{where}: expected a list of names, got {value!r:.60}")
    return value


def _metric(name, where: str) -> str:
    if not isinstance(name, str) or name not in R.METRICS:
        raise UsageError(f"{where}: unknown metric {name!r:.40}; known: {list(R.METRICS)}")
    return name


def _integer(value, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UsageError(f"{where}: expected an integer from {low} to {high}, got {value!r:.40}")
    return value


def _spec(spec, where: str) -> dict:
    """A tolerance: {absolute: X} or {relative: X}, X a finite number >= 0."""
    ok = isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in ("absolute", "relative")
    if ok:
        try:
            number(next(iter(spec.values())), where, UsageError)
        except UsageError:
            ok = False
    if not ok:
        raise UsageError(f"{where}: a tolerance is {{absolute: X}} or {{relative: X}} with X >= 0, got {spec!r:.60}")
    return spec


def _tolerance(config: dict, task: str, metric: str, base_value: float) -> float:
    spec = config["task_tolerance"].get(task, {}).get(metric) or config["tolerance"].get(metric) or {"absolute": 0}
    kind, value = next(iter(spec.items()))
    return float(value) * (abs(base_value) if kind == "relative" else 1.0)


def _single_run(path: str, role: str) -> R.ModelRun:
    runs = R.find_runs(path)
    if len(runs) != 1:
        labels = ", ".join(r.path.name for r in runs)
        raise UsageError(f"{path}: --{role} must be one model's output folder; it holds {len(runs)} ({labels})")
    return runs[0]


def _check_runs(base: R.ModelRun, cand: R.ModelRun, config: dict, allow_subset: bool) -> tuple[dict, list[str]]:
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
        if any(m in R.BERTSCORE for m in config["metrics"]) and tb.backbone != tc.backbone:
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
        differ = K.group_mismatch(tb, tc)
        if differ:
            raise UsageError(f"{task}: the runs' seen/unseen groups differ on {len(differ)} question(s) (e.g. "
                             f"{', '.join(differ[:3])}): other split settings? compare runs of one split")
        shared[task] = common
    return shared, notes


def _task_metrics(tr: R.TaskRun, config: dict) -> list[str]:
    """The configured metrics that the task's family reports (QA tasks: perplexity, F1...; the probe: acc...)."""
    return [m for m in config["metrics"] if tr.family in R.METRICS[m].families]


def evaluate(base: R.ModelRun, cand: R.ModelRun, config: dict, allow_subset: bool = False) -> tuple[list[Row], list[str]]:
    shared, notes = _check_runs(base, cand, config, allow_subset)
    rows = []
    for task, ids in shared.items():
        for metric in _task_metrics(base.tasks[task], config):
            higher = R.METRICS[metric].higher_is_better
            cmp = K.compare(base.tasks[task], cand.tasks[task], metric, ids, int(config["resamples"]),
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


def _knowledge_row(base: R.ModelRun, cand: R.ModelRun, config: dict) -> Row:
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
    eff = K.effect(base.tasks[task], cand.tasks[task], metric, int(config["resamples"]), int(config["seed"]))
    if eff is None:
        raise UsageError(f"{task}: knowledge rule needs seen and unseen questions in both runs")
    est = eff.did
    higher = R.METRICS[metric].higher_is_better
    sign = 1.0 if higher else -1.0
    worsening, worse_low = -sign * est.value, min(-sign * est.low, -sign * est.high)
    tol = _tolerance({"task_tolerance": {}, "tolerance": {metric: rule["tolerance"]}}, task, metric, eff.base_gap)
    failed = worsening > tol and worse_low > tol
    return Row(task, f"{metric} seen-unseen (knowledge)", higher, eff.base_gap, eff.model_gap, est.value, est.low,
               est.high, worsening, tol, float("nan"),
               est.n_seen + est.n_unseen, "fail" if failed else "pass",
               f"diff-in-diff over {est.n_seen} seen / {est.n_unseen} unseen questions")


# ------------------------------------------------------------------------------------------------------ outputs


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.4f}"


def table(rows: list[Row]) -> str:
    head = ["task", "metric", "baseline", "candidate", "delta", "95% CI", "tolerance", "MDE", "verdict"]
    body = [[r.task, r.metric + (" (lower better)" if not r.higher_is_better else ""), _fmt(r.baseline),
             _fmt(r.candidate), f"{r.delta:+.4f}", f"[{r.low:+.4f}, {r.high:+.4f}]", _fmt(r.tolerance), _fmt(r.mde),
             r.verdict.upper()] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(rows: list[Row], verdict: str, base: str, cand: str, notes: list[str]) -> str:
    out = [f"### fm5 gate: **{verdict.upper()}**", "", f"Baseline **{md.text(base)}** vs candidate **{md.text(cand)}**.",
           ""]
    out += [f"- {md.text(n)}" for n in notes] + ([""] if notes else [])
    out += ["| task | metric | baseline | candidate | delta | 95% CI | tolerance | MDE | verdict |",
            "|---|---|---:|---:|---:|---|---:|---:|---|"]
    for r in rows:
        out.append(f"| {md.text(r.task)} | {md.text(r.metric)} | {_fmt(r.baseline)} | {_fmt(r.candidate)} | {r.delta:+.4f} | "
                   f"[{r.low:+.4f}, {r.high:+.4f}] | {_fmt(r.tolerance)} | {_fmt(r.mde)} | "
                   f"{'❌ FAIL' if r.verdict == 'fail' else '✅ pass'} |")
    return "\n".join(out) + "\n"


def junit(rows: list[Row]) -> bytes:
    failures = sum(r.verdict == "fail" for r in rows)
    suites = ET.Element("testsuites", name="fm5 gate", tests=str(len(rows)), failures=str(failures), errors="0")
    suite = ET.SubElement(suites, "testsuite", name="fm5 gate", tests=str(len(rows)), failures=str(failures),
                          errors="0", skipped="0", time="0")
    for r in rows:
        case = ET.SubElement(suite, "testcase", classname=f"fm5_gate.{r.task}", name=r.metric, time="0")
        summary = (f"baseline {_fmt(r.baseline)}, candidate {_fmt(r.candidate)}, delta {r.delta:+.4f}, "
                   f"95% CI [{r.low:+.4f}, {r.high:+.4f}], tolerance {_fmt(r.tolerance)}, n={r.n}")
        if r.verdict == "fail":
            ET.SubElement(case, "failure", message=f"{r.task}/{r.metric} regressed: {summary}",
                          type="regression").text = summary
        else:
            ET.SubElement(case, "system-out").text = summary + (f"; {r.note}" if r.note else "")
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n"


def _round(x):
    if isinstance(x, float):
        return None if math.isnan(x) else round(x, 10)
    return x


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--baseline", required=True, help="baseline model's lm-eval output folder")
    p.add_argument("--candidate", required=True, help="candidate model's lm-eval output folder")
    p.add_argument("--config", help="gate.yaml with tolerances (default: built-in, see examples/gate.yaml)")
    p.add_argument("--allow-subset", action="store_true", help="compare only the questions both runs answered")
    p.add_argument("--json", help="write machine-readable verdicts here")
    p.add_argument("--junit", help="write a JUnit XML report here (one test case per task x metric)")
    p.add_argument("--markdown", help="append a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)")


def main(args) -> int:
    """Exit 0 pass, 1 regression; unusable input raises (exit 2) after writing the decision ``unusable`` and its
    reason to --json and --markdown, so a CI step that reads them always finds one."""
    try:
        config = load_config(args.config)
        base, cand = _single_run(args.baseline, "baseline"), _single_run(args.candidate, "candidate")
        rows, notes = evaluate(base, cand, config, args.allow_subset)
    except (Fm5Error, OSError) as err:  # the CLI prints the one line and exits 2; the outputs say so first
        reason = str(err) if isinstance(err, Fm5Error) else f"{err.filename or ''}: {err.strerror or err}"
        if args.json:
            doc = {"verdict": "unusable", "error": reason, "baseline": str(args.baseline),
                   "candidate": str(args.candidate), "rule": RULE, "rows": []}
            write_atomic(args.json, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())
        if args.markdown:
            with open(args.markdown, "a", encoding="utf-8") as fh:
                fh.write(f"### fm5 gate: **UNUSABLE INPUT**\n\n{md.text(reason)}\n")
        raise
    verdict = "fail" if any(r.verdict == "fail" for r in rows) else "pass"
    print(f"fm5 gate: baseline {base.label} ({base.path}) vs candidate {cand.label} ({cand.path})")
    for n in notes:
        print(f"note: {n}")
    print(table(rows))
    for r in rows:
        if r.note:
            print(f"note: {r.task}/{r.metric}: {r.note}")
    failed = [f"{r.task}/{r.metric}" for r in rows if r.verdict == "fail"]
    print(f"verdict: {verdict.upper()}" + (f" ({', '.join(failed)} regressed)" if failed else ""))
    if args.json:
        doc = {"verdict": verdict, "baseline": str(args.baseline), "candidate": str(args.candidate),
               "baseline_label": base.label, "candidate_label": cand.label,
               "config": config, "notes": notes, "rule": RULE,
               "rows": [{k: _round(v) for k, v in asdict(r).items()} for r in rows]}
        write_atomic(args.json, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())
    if args.junit:
        write_atomic(args.junit, junit(rows))
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as fh:
            fh.write(markdown(rows, verdict, base.label, cand.label, notes))
    sys.stdout.flush()
    return 1 if verdict == "fail" else 0
