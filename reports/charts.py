"""The report's charts as plain data: inline SVG geometry (points, ticks, captions) decided here, so the template
only prints coordinates; no chart library, no CDN."""

from __future__ import annotations

from dataclasses import dataclass

from harness_ext import results
from harness_ext import run_layout

CHART_METRICS = ("margin", "f1", "perplexity", "bertscore_f1")
CHART_W, CHART_H, PAD = 420, 180, 34


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


def charts(base: results.ModelRun, others: list[results.ModelRun], tasks: list[str],
           histories: list[tuple[str, list[dict]]]) -> list[Chart]:
    """Loss by step for each training run (name, trainer_state.json's log history), and each chart metric by
    checkpoint, one line per training run and task, the base at step 0."""
    out = []
    for name, history in histories:
        loss = {"train loss": [(e["step"], e["loss"]) for e in history if "loss" in e and "step" in e],
                "eval loss": [(e["step"], e["eval_loss"]) for e in history if "eval_loss" in e and "step" in e]}
        c = _chart(f"Loss by step: {name}", "loss (nats/token)", loss)
        if c:
            out.append(c)
    # one line per training run and task: the steps of two runs are not one curve
    checkpoints = [(run_layout.label_run(r.label), s, r) for r in others
                   if (s := run_layout.checkpoint_step(r.label)) is not None]
    names = sorted({name for name, _, _ in checkpoints})
    if checkpoints:
        for metric in CHART_METRICS:
            lines = {}
            for task, name in ((t, n) for t in tasks for n in names):
                family = next(r.tasks[task].family for r in (base, *others) if task in r.tasks)
                if family not in results.METRICS[metric].families:
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


FOREST_W, FOREST_LABEL_W, FOREST_ROW_H = 560, 190, 22


@dataclass
class ForestRow:
    label: str
    y: str
    x: str  # the estimate
    x_low: str  # its 95 % interval
    x_high: str
    css: str  # "declared" for the declared comparison, else "s0"
    tip: str


@dataclass
class Forest:
    """A forest plot: one row per model, its diff-in-diff and 95 % interval on one axis, zero marked."""

    title: str
    rows: list[ForestRow]
    ticks: list[tuple[str, str]]  # (x, label)
    zero_x: str
    width: int = FOREST_W
    height: int = 0
    label_w: int = FOREST_LABEL_W
    axis_y: int = 0


def forest(groups: dict[tuple[str, str], list[tuple[str, float, float, float, bool]]]) -> list[Forest]:
    """One plot per (task, metric) from rows (model, estimate, low, high, declared); intervals that are not finite
    are left out."""
    out = []
    for (task, metric), rows in groups.items():
        rows = [r for r in rows if all(x == x and abs(x) != float("inf") for x in r[1:4])]
        if not rows:
            continue
        values = [0.0] + [x for r in rows for x in r[1:4]]
        sx, lo, hi = _scale(values, FOREST_LABEL_W + 8, FOREST_W - 12)
        height = 24 + FOREST_ROW_H * len(rows)
        plotted = []
        for i, (model, est, low, high, declared) in enumerate(rows):
            y = 16 + FOREST_ROW_H * i
            plotted.append(ForestRow(model + (" (declared)" if declared else ""), f"{y:.0f}", f"{sx(est):.1f}",
                                     f"{sx(low):.1f}", f"{sx(high):.1f}", "declared" if declared else "s0",
                                     f"{model}: {est:+.3f} [{low:+.3f}, {high:+.3f}]"))
        ticks = [(f"{sx(v):.1f}", f"{v:+.3g}") for v in (lo, (lo + hi) / 2, hi)]
        out.append(Forest(f"{task} {metric}: seen minus unseen gain", plotted, ticks, f"{sx(0.0):.1f}",
                          height=height + 14, axis_y=height - 4))
    return out


GAIN_W, GAIN_LABEL_W, GAIN_VALUE_W, GAIN_ROW_H, GAIN_TOP = 600, 60, 172, 17, 26  # two side by side at 1,400 px
GROUPS = (("seen", "s0", "seen: read in training"), ("unseen", "s1", "unseen: the control group"))


@dataclass
class GainRow:
    group: str  # "seen" / "unseen"
    y: str
    x: str  # the change from the base ("" when there is none)
    x_low: str  # its 95 % interval ("" when not finite)
    x_high: str
    css: str
    value: str  # "+0.305 [+0.116, +0.505]", printed at the right


@dataclass
class GainModel:
    label: str
    y: str  # the label's own line, above its rows
    rows: list[GainRow]


@dataclass
class GainFigure:
    """The first screen: per probe, each model's change from the base on seen and on unseen items, with the 95 %
    intervals the verdict uses. Every label is SVG text."""

    title: str
    caption: str
    models: list[GainModel]
    ticks: list[tuple[str, str]]  # (x, label)
    legend: list[tuple[str, str, str, str, str]]  # (line x1, line x2, text x, text, css)
    zero_x: str
    height: int
    axis_y: int
    width: int = GAIN_W
    label_w: int = GAIN_LABEL_W
    value_x: int = GAIN_W - GAIN_VALUE_W + 6


def _finite(*xs: float) -> bool:
    return all(x == x and abs(x) != float("inf") for x in xs)


def gains(title: str, caption: str, models: list[tuple[str, dict[str, tuple[float, float, float]]]],
          fmt) -> GainFigure | None:
    """One figure from ``models``: (label, {"seen": (change, low, high), "unseen": ...}); ``fmt`` formats a signed
    change in the metric's units. A change without a finite interval is drawn as a dot; none at all, as "n/a"."""
    if not models:
        return None
    values = [0.0] + [x for _, groups in models for est in groups.values() for x in est if _finite(x)]
    sx, lo, hi = _scale(values, GAIN_LABEL_W + 8, GAIN_W - GAIN_VALUE_W - 8)
    drawn, y = [], GAIN_TOP
    for label, groups in models:
        y += GAIN_ROW_H
        model = GainModel(label, f"{y}", [])
        for group, css, _ in GROUPS:
            value, low, high = groups.get(group, (float("nan"),) * 3)
            y += GAIN_ROW_H
            has_ci = _finite(value, low, high)
            model.rows.append(GainRow(group, f"{y}", f"{sx(value):.1f}" if _finite(value) else "",
                                      f"{sx(low):.1f}" if has_ci else "", f"{sx(high):.1f}" if has_ci else "", css,
                                      "n/a" if not _finite(value) else
                                      f"{fmt(value)} [{fmt(low)}, {fmt(high)}]" if has_ci else fmt(value)))
        drawn.append(model)
        y += 6
    ticks = [(f"{sx(v):.1f}", fmt(v)) for v in (lo, (lo + hi) / 2, hi)]
    legend = [(f"{x}", f"{x + 18}", f"{x + 22}", text, css)
              for (_, css, text), x in zip(GROUPS, (GAIN_LABEL_W + 8, GAIN_LABEL_W + 208))]
    return GainFigure(title, caption, drawn, ticks, legend, f"{sx(0.0):.1f}", height=y + 22, axis_y=y + 2)
