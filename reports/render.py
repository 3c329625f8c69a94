"""The report's output: the Jinja2 template (autoescape on, StrictUndefined, nothing marked safe: model outputs are
untrusted text) and the Markdown summary, both from the view model alone."""

from __future__ import annotations

import functools
from pathlib import Path

from harness_ext import markdown as md
from reports.view import Report


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
    """The verdict, the warnings and the summary tables; every label and sentence escaped (harness_ext.markdown)."""
    lines = [f"### {report.title}", "", f"Baseline: **{md.text(report.base)}**.", ""]
    if report.verdict:
        v = report.verdict
        lines += [f"- **{md.text(v.model)}** ({md.text(v.comparison)}, {md.text(v.source)}): {md.text(v.sentence)}"]
        lines += [f"  - {line.line.capitalize()} ({md.text(line.comparison)}): {md.text(line.sentence)}"
                  for line in report.verdict_lines]
        lines.append("")
    lines += [f"> ⚠️ {md.text(w)}" for w in report.warnings] + ([""] if report.warnings else [])
    for table in report.summary:
        lines += [f"**{md.text(table.task)}** (n = {table.n})", "",
                  "| model | " + " | ".join(md.text(m) for m, _ in table.metrics) + " |",
                  "|---|" + "---:|" * len(table.metrics)]
        for line in table.lines:
            cells = [c.value if c.delta.css == "base" else f"{c.value} ({c.delta.text})" for c in line.cells]
            lines.append(f"| {md.text(line.model)} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
