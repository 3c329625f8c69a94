"""The pull-request comment (`fm5 report --comment FILE --gate gate.json ...`): the gate's decision first, the
failing metrics with their change and interval, the report's verdict lines, a link to the run's artifacts.

Built from the gate's JSON output(s) and the report's view model only. Every text that comes from outside (model
labels, task names, error messages, warnings) goes through ``harness_ext.markdown.text``; the hidden marker that the
posting step looks for can therefore only be the first line. Cut cleanly (whole lines, never a half table row) under
GitHub's comment limit, with a line saying what was left out."""

from __future__ import annotations

import math
import re

from harness_ext import markdown as md
from harness_ext.errors import UsageError
from reports.view import Report

MARKER = "<!-- fm5-gate -->"  # how the action finds its own comment to update it in place
LIMIT = 65_536  # GitHub's maximum comment body, counted here in UTF-16 code units (what GitHub's limit counts)
DECISIONS = {"pass": "✅ pass", "regression": "❌ regression", "unusable": "⚠️ unusable input"}
EXIT_STATUS = {"pass": 0, "regression": 1, "unusable": 2}  # the gate's exit status for each decision
_URL = re.compile(r"https?://[^\s<>()\[\]`\"']+")


def decision(gates: list[dict]) -> str:
    """The worst of the gates' outcomes: unusable input, then a regression, else pass."""
    verdicts = {g["verdict"] for g in gates}
    return "unusable" if "unusable" in verdicts else "regression" if "fail" in verdicts else "pass"


def check_gate(doc: dict, path: str) -> dict:
    """A `fm5 gate --json` document, or a one-line error naming the file and the field."""
    if doc.get("verdict") not in ("pass", "fail", "unusable"):
        raise UsageError(f"{path}: field verdict: not an fm5 gate --json file (pass, fail or unusable expected)")
    if not isinstance(doc.get("rows"), list) or not all(isinstance(r, dict) for r in doc["rows"]):
        raise UsageError(f"{path}: field rows: expected a list of the gate's rows")
    for i, row in enumerate(doc["rows"]):
        for field in ("task", "metric", "verdict", "delta", "low", "high", "tolerance"):
            if field not in row:
                raise UsageError(f"{path}: field rows[{i}].{field}: missing")
    return doc


def _num(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.4f}"


def _size(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _gate_lines(gate: dict) -> list[str]:
    cand = md.text(gate.get("candidate_label") or gate.get("candidate", "?"))
    base = md.text(gate.get("baseline_label") or gate.get("baseline", "?"))
    if gate["verdict"] == "unusable":
        return [f"**{cand}** against **{base}**: unusable input, nothing was compared: {md.text(gate.get('error', ''))}",
                ""]
    failing = [r for r in gate["rows"] if r["verdict"] == "fail"]
    head = f"**{cand}** against **{base}**: "
    if not failing:
        return [head + f"no metric regressed beyond its tolerance ({len(gate['rows'])} checked).", ""]
    lines = [head + f"{len(failing)} of {len(gate['rows'])} metrics regressed beyond their tolerance.", "",
             "| task | metric | change | 95 % interval | tolerance |", "|---|---|---:|---|---:|"]
    lines += [f"| {md.text(r['task'])} | {md.text(r['metric'])} | {_num(r['delta'])} | "
              f"[{_num(r['low'])}, {_num(r['high'])}] | {_num(r['tolerance']).lstrip('+')} |" for r in failing]
    return lines + [""]


def _verdict_lines(report: Report) -> list[str]:
    if report.verdict is None:
        return ["**Verdict**: none (the report names no declared comparison it could test).", ""]
    v = report.verdict
    lines = [f"**Verdict** (baseline **{md.text(report.base)}**), **{md.text(v.model)}**: {md.text(v.sentence)}"]
    lines += [f"- {md.text(line.line.capitalize())} ({md.text(line.comparison)}): {md.text(line.sentence)}"
              for line in report.verdict_lines]
    lines += [f"- ⚠️ {md.text(w)}" for w in report.warnings]
    return lines + [""]


def _link(url: str | None) -> str:
    if not url:
        return "The HTML report and the gate's JSON and JUnit files are in this run's artifacts."
    if not _URL.fullmatch(url):
        raise UsageError(f"--link: expected an http(s) URL without spaces, brackets or quotes, got {url!r:.80}")
    return f"[The HTML report and the gate's JSON and JUnit files]({url}) (this run's artifacts)."


def comment(gates: list[dict], report: Report | None, link: str | None = None, limit: int = LIMIT) -> str:
    """The comment's Markdown: the marker, the decision, each candidate's failing metrics, the verdict lines, the
    link. Lines past ``limit`` are left out whole, and one line says how many."""
    if not gates:
        raise UsageError("--comment needs at least one --gate JSON file (fm5 gate --json)")
    outcome = decision(gates)
    head = [MARKER, f"### fm5 gate: {DECISIONS[outcome]} (exit {EXIT_STATUS[outcome]})", ""]
    body = [line for g in gates for line in _gate_lines(g)] + (_verdict_lines(report) if report else [])
    tail = [_link(link)]
    budget = limit - _size("\n".join(head + tail)) - 200  # room for the "left out" line
    kept = []
    for i, line in enumerate(body):
        budget -= _size(line) + 1
        if budget < 0:
            left = [x for x in body[i:] if x.strip()]
            kept += ["", f"*{len(left)} more line(s) left out to stay under GitHub's {limit:,}-character comment "
                         f"limit: the gate's JSON and the report hold everything.*", ""]
            break
        kept.append(line)
    return "\n".join(head + kept + tail) + "\n"
