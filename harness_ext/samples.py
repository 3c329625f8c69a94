"""One lm-eval samples file (``samples_<task>_<stamp>.jsonl``) read into per-question records (``read_samples``):
the fields each fm5 task family logs, checked, with one-line errors naming the file and line; the continuation
probe's items averaged per passage (the unit its seen/unseen hash randomized)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness_ext import files, metrics
from harness_ext.errors import Fm5Error


class ResultsError(Fm5Error):
    """An output folder that cannot be used; one line naming the file."""


@dataclass
class Question:
    id: str
    question: str
    answer: str
    prediction: str  # QA: the generated answer; MC: the option the model ranked first (lm-eval's `acc` choice)
    values: dict  # metric -> the logged per-question value (perplexity: (NLL, tokens))
    bertscore: tuple[float, float, float] | None = None  # filled by `score_bertscore`
    group: str | None = None  # "seen" / "unseen" (data.Split.groups), as the task logged it; None in older runs
    choices: list[str] | None = None  # MC only
    gold: int | None = None
    picked: int | None = None
    items: int = 1  # the continuation probe: the items averaged into this passage's values
    # the continuation probe: every option its items score (golds and distractors, stripped), which the
    # decontamination check of the report protects (decontamination.continuation_leaks)
    sentences: tuple[str, ...] = ()

    @property
    def nll(self) -> float:
        return self.values["perplexity"][0]

    @property
    def tokens(self) -> int:
        return self.values["perplexity"][1]

    @property
    def f1(self) -> float:
        return self.values["f1"]


def logged_number(x, field: str, integer: bool = False) -> float:
    """A logged value: a finite number (or a number in a string, as lm-eval logs log-likelihoods); counts >= 0."""
    if isinstance(x, (list, tuple)) and x:
        x = x[0]
    value = files.number(x, f"field {field}", integer=integer, minimum=0 if integer else None, text=True)
    return value if integer else float(value)


def _text(x, field: str) -> str:
    if not isinstance(x, (str, int)) or isinstance(x, bool):
        raise ValueError(f"field {field}: expected text, got {type(x).__name__}")
    text = str(x)
    if text != text.encode("utf-8", "replace").decode("utf-8"):
        raise ValueError(f"field {field}: holds an unpaired surrogate escape, not text")
    return text


def _question(sample: dict, family: str, where: str) -> Question:
    try:
        doc = sample["doc"]
        group = doc.get("group") if doc.get("group") in ("seen", "unseen") else None
        if family in ("mc", "doc"):
            if not isinstance(doc["choices"], list) or not doc["choices"]:
                raise ValueError("field doc.choices: expected a list of options")
            choices = [_text(c, "doc.choices") for c in doc["choices"]]
            gold = logged_number(doc["gold"], "doc.gold", integer=True)
            if gold >= len(choices):
                raise ValueError(f"field doc.gold: {gold} is not an option index (of {len(choices)})")
        if family == "doc":  # one item, under its passage's id (``_passages`` averages a passage's items)
            return Question(id=_text(doc["id"], "doc.id"), question=_text(doc["context"], "doc.context"),
                            answer=choices[gold], prediction="", group=group,
                            values={m: logged_number(sample[m], m) for m in metrics.family_metrics("doc")},
                            sentences=tuple(c.strip() for c in choices))
        common = {"id": _text(doc["id"], "doc.id"), "question": _text(doc["question"], "doc.question"),
                  "answer": _text(doc["answer"], "doc.answer"), "group": group}
        if family == "mc":
            resps = sample["filtered_resps"]
            if not isinstance(resps, list) or len(resps) < len(choices):
                raise ValueError("field filtered_resps: fewer log-likelihoods than options")
            lls = [logged_number(r, "filtered_resps") for r in resps[: len(choices)]]
            picked = metrics.argmax(lls)
            return Question(**common, prediction=choices[picked], choices=choices, gold=gold, picked=picked,
                            values={m: logged_number(sample[m], m) for m in metrics.family_metrics("mc")})
        pair = sample["perplexity"]
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError("field perplexity: expected [answer NLL, answer tokens]")
        prediction = sample["filtered_resps"][0]
        if isinstance(prediction, list):
            prediction = prediction[0]
        return Question(**common, prediction=_text(prediction, "filtered_resps"), values={
            "perplexity": (logged_number(pair[0], "perplexity"), logged_number(pair[1], "perplexity", integer=True)),
            "exact_match": logged_number(sample["exact_match"], "exact_match"), "f1": logged_number(sample["f1"], "f1")})
    except KeyError as err:
        raise ResultsError(f"{where}: not an fm5 sample (field {err} missing)") from None
    except (TypeError, ValueError, IndexError, AttributeError, OverflowError) as err:
        raise ResultsError(f"{where}: not an fm5 sample ({err})") from None


def _passages(items: list[tuple[Question, str]]) -> list[Question]:
    """The continuation probe's items averaged per passage: the unit the seen/unseen hash randomized, so the unit of
    every paired statistic (``Question.items`` says how many items each holds)."""
    by_unit: dict[str, list[Question]] = {}
    for q, where in items:
        if by_unit.get(q.id) and by_unit[q.id][0].group != q.group:
            raise ResultsError(f"{where}: passage {q.id!r} has items in both the seen and the unseen group")
        by_unit.setdefault(q.id, []).append(q)
    return [Question(id=unit, question=qs[0].question, answer=qs[0].answer, prediction="", group=qs[0].group,
                     values={m: metrics.mean([q.values[m] for q in qs]) for m in metrics.family_metrics("doc")},
                     items=len(qs), sentences=tuple(dict.fromkeys(s for q in qs for s in q.sentences)))
            for unit, qs in by_unit.items()]


def read_samples(path: Path, family: str) -> list[Question]:
    """The questions of one samples file of a task of ``family`` (``qa``, ``mc`` or ``doc``), sorted by id."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ResultsError(f"{path}: cannot read ({err.strerror or err})") from None
    out, items = [], []
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        q = _question(files.loads(line, where, ResultsError), family, where)
        if family == "doc":
            items.append((q, where))
        else:
            out.append(q)
    return sorted(out + _passages(items), key=lambda q: q.id)
