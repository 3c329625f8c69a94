"""The gate's outputs, coverage.py-style reporters over its rows (harness_ext.gate): the terminal table, the
Markdown summary (e.g. for $GITHUB_STEP_SUMMARY), JUnit XML, and the JSON document (also for unusable input)."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import asdict

from harness_ext import markdown as md
from harness_ext.gate import RULE, Row


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


def document(rows: list[Row], verdict: str, baseline: str, candidate: str, labels: tuple[str, str], config: dict,
             notes: list[str]) -> bytes:
    """The --json document: the decision, the inputs, the configuration, the rule and every row."""
    doc = {"verdict": verdict, "baseline": baseline, "candidate": candidate, "baseline_label": labels[0],
           "candidate_label": labels[1], "config": config, "notes": notes, "rule": RULE,
           "rows": [{k: _round(v) for k, v in asdict(r).items()} for r in rows]}
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


def unusable_document(reason: str, baseline: str, candidate: str) -> bytes:
    """The --json document of an input the gate could not use (exit 2): the decision and its one-line reason."""
    doc = {"verdict": "unusable", "error": reason, "baseline": baseline, "candidate": candidate, "rule": RULE,
           "rows": []}
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


def unusable_markdown(reason: str) -> str:
    return f"### fm5 gate: **UNUSABLE INPUT**\n\n{md.text(reason)}\n"
