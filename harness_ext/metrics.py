"""Pure metric functions and the one metric registry.

QA metrics: SQuAD v1.1 exact match and F1, corpus perplexity, BERTScore over lists. Multiple-choice probe metrics:
lm-eval's acc / acc_norm, the domain-conditional PMI accuracy and the margin. No lm-eval imports. SQuAD
normalisation follows the official v1.1 evaluation script; scores are fractions in [0, 1] (the official script
prints them x 100).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Metric:
    """One metric of the fm5 tasks. ``kind`` says how per-question values combine into the task's value:
    ``mean`` (floats), ``perplexity`` ((NLL, tokens) pairs: exp of total NLL over total tokens) or ``pairs``
    ((prediction, answer) strings scored together, then averaged: BERTScore). ``families``: the task families that
    report it: ``qa`` (fm5_qa_open / _closed), ``mc`` (the question probe fm5_qa_mc_open / _closed), ``doc`` (the
    passage-continuation probe fm5_doc_mc)."""

    name: str
    higher_is_better: bool
    kind: str
    families: tuple[str, ...]


# The registry: tasks (higher_is_better), the results reader, the gate, the report and examples/gate.yaml's test.
METRICS = {m.name: m for m in (
    Metric("perplexity", False, "perplexity", ("qa",)),
    Metric("exact_match", True, "mean", ("qa",)),
    Metric("f1", True, "mean", ("qa",)),
    Metric("bertscore_precision", True, "pairs", ("qa",)),
    Metric("bertscore_recall", True, "pairs", ("qa",)),
    Metric("bertscore_f1", True, "pairs", ("qa",)),
    Metric("acc", True, "mean", ("mc", "doc")),
    Metric("acc_norm", True, "mean", ("mc", "doc")),
    Metric("acc_pmi", True, "mean", ("mc",)),
    Metric("margin", True, "mean", ("mc", "doc")),
)}
BERTSCORE = ("bertscore_precision", "bertscore_recall", "bertscore_f1")


def family_metrics(family: str) -> tuple[str, ...]:
    return tuple(name for name, m in METRICS.items() if family in m.families)

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def bootstrap_kind(name: str) -> str:
    """How a bootstrap recomputes the metric on a resample (harness_ext.stats): "perplexity" or "mean"."""
    return "perplexity" if METRICS[name].kind == "perplexity" else "mean"


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation, drop the articles a/an/the, collapse whitespace (SQuAD v1.1)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def f1(prediction: str, reference: str) -> float:
    """Bag-of-tokens F1 between the normalised strings (SQuAD v1.1: 0 when nothing is shared)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def corpus_perplexity(pairs: Sequence[tuple[float, int]]) -> float:
    """exp(total NLL / total tokens) over (answer NLL in nats, answer token count) pairs: token-weighted, never
    the mean of per-answer perplexities."""
    total_nll = sum(float(nll) for nll, _ in pairs)
    total_tokens = sum(int(n) for _, n in pairs)
    if total_tokens <= 0:
        return float("nan")
    return math.exp(total_nll / total_tokens)


@lru_cache(maxsize=2)
def _scorer(model: str, num_layers: int):
    from bert_score import BERTScorer

    return BERTScorer(model_type=model, num_layers=num_layers, lang="en", batch_size=32)


def bertscore(
    predictions: Sequence[str], references: Sequence[str], model: str, num_layers: int
) -> tuple[list[float], list[float], list[float]]:
    """Per-pair BERTScore (precision, recall, F1) with one ``BERTScorer`` for the whole list.

    A blank prediction or reference scores 0 on all three (bert_score 0.3.13 crashes on empty strings).
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    keep = [i for i, (p, r) in enumerate(zip(predictions, references)) if p.strip() and r.strip()]
    precision, recall, f = ([0.0] * len(predictions) for _ in range(3))
    if keep:
        p, r, fs = _scorer(model, num_layers).score(
            [predictions[i] for i in keep], [references[i] for i in keep], batch_size=32
        )
        for j, i in enumerate(keep):
            precision[i], recall[i], f[i] = float(p[j]), float(r[j]), float(fs[j])
    return precision, recall, f


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


# ------------------------------------------------------------------------------------ multiple-choice probe


def argmax(values: Sequence[float]) -> int:
    """Index of the largest value; the first one on ties (as numpy.argmax, which lm-eval uses)."""
    return max(range(len(values)), key=lambda i: (values[i], -i))


def mc_scores(gold: int, lls: Sequence[float], choice_chars: Sequence[int], exact_lls: Sequence[float],
              tokens: Sequence[int], unconditional_lls: Sequence[float]) -> dict[str, float]:
    """The probe's per-question scores.

    - ``acc``: the option with the highest log-likelihood is the gold one (lm-eval's ``acc``; ``lls`` are the
      continuation log-likelihoods lm-eval returned).
    - ``acc_norm``: the same with each log-likelihood divided by the option's length in characters (lm-eval's).
    - ``acc_pmi``: the same with each option's log-likelihood minus its log-likelihood given the prompt with the
      question (and passage) removed: domain-conditional PMI (Holtzman et al. 2021), so an option that is likely
      whatever was asked gains nothing.
    - ``margin``: the gold option's mean log-probability per token minus the mean of the distractors' (nats per
      token), from ``exact_lls`` / ``tokens``: the option's own tokens only.
    """
    n = len(lls)
    if not (n >= 2 and len(choice_chars) == len(exact_lls) == len(tokens) == len(unconditional_lls) == n
            and 0 <= gold < n):
        raise ValueError(f"mc_scores: {n} options, gold {gold}, inconsistent inputs")
    scores = continuation_scores(gold, lls, choice_chars, exact_lls, tokens)
    return {**{m: scores[m] for m in ("acc", "acc_norm")},
            "acc_pmi": float(argmax([c - u for c, u in zip(lls, unconditional_lls)]) == gold),
            "margin": scores["margin"]}


def continuation_scores(gold: int, lls: Sequence[float], choice_chars: Sequence[int], exact_lls: Sequence[float],
                        tokens: Sequence[int]) -> dict[str, float]:
    """``acc``, ``acc_norm`` and ``margin`` as ``mc_scores`` defines them: the passage-continuation probe's
    per-item scores (its options are sentences of the same document, so there is no question to remove)."""
    n = len(lls)
    if not (n >= 2 and len(choice_chars) == len(exact_lls) == len(tokens) == n and 0 <= gold < n):
        raise ValueError(f"continuation_scores: {n} options, gold {gold}, inconsistent inputs")
    per_token = [ll / max(int(t), 1) for ll, t in zip(exact_lls, tokens)]
    distractors = [v for i, v in enumerate(per_token) if i != gold]
    return {
        "acc": float(argmax(lls) == gold),
        "acc_norm": float(argmax([ll / max(c, 1) for ll, c in zip(lls, choice_chars)]) == gold),
        "margin": per_token[gold] - sum(distractors) / len(distractors),
    }
