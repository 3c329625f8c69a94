"""The report's view model: plain data objects, every number already formatted and every label decided, for the
template (reports/templates/report.html.j2) and the Markdown summary to print."""

from __future__ import annotations

from dataclasses import dataclass, field

from reports.charts import Chart, Forest, GainFigure


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
    """The declared comparison's sentence: the only confirmatory claim of the report."""

    model: str
    comparison: str  # "final:fm5_qa_mc_closed:margin"
    source: str  # how it was declared: before training (the run's record), by `fm5 report --primary`, or the default
    sentence: str
    css: str  # "up" learned, "down" worse, "ns" otherwise
    line: str = ""  # "stored" / "usable" for a line of a two-line verdict


@dataclass
class DidRow:
    model: str
    task: str
    metric: str
    direction: str
    seen_gain: str  # model - base on seen questions, with its interval
    unseen_gain: str
    did: Cell
    interval: str
    p: str  # randomization p-value of the diff-in-diff, two-sided
    p_holm: str  # Holm-adjusted over the exploratory family ("declared" for the declared comparison)
    role: str  # "declared" or "exploratory"


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
    group: str  # seen / unseen ("" in runs from before the control group)
    question: str
    gold: str
    answers: list[Answer]


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
    group: str
    question: str
    gold: str  # "A: gold answer"
    picks: list[Pick]


@dataclass
class Report:
    title: str
    generated: str
    base: str
    models: list[str]  # the baseline first, then the others in training order
    warnings: list[str]
    notes: list[str]
    summary: list[SummaryTable]
    knowledge: list[KnowledgeRow]
    verdict: Verdict | None  # the headline: the declared comparison, or the pair of lines in plain words
    verdict_lines: list[Verdict]  # stored, then usable, when the report has both probes; else empty
    did: list[DidRow]
    closure: list[ClosureRow]
    transitions: list[TransitionRow]
    knowledge_notes: list[str]
    charts: list[Chart]
    forest: list[Forest]  # diff-in-diff intervals per task and metric, one row per model
    gains: list[GainFigure]  # the first screen: per probe, each model's seen and unseen change from the base
    questions: list[QuestionRow]
    choices: list[ChoiceRow]
    provenance: list[tuple[str, str]]
    flip_threshold: str
    missing: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------- formats


def _letter(i: int) -> str:
    return chr(ord("A") + i) if 0 <= i < 26 else str(i + 1)


def fmt(metric: str, x: float) -> str:
    return "n/a" if x != x else (f"{x:.2f}" if metric == "perplexity" else f"{x:.3f}")


def fmt_delta(metric: str, x: float) -> str:
    return f"{x:+.2f}" if metric == "perplexity" else f"{x:+.3f}"
