"""Pure metric functions: SQuAD v1.1 exact match and F1, corpus perplexity, BERTScore over lists.

No lm-eval imports. SQuAD normalisation follows the official v1.1 evaluation script; scores are fractions in [0, 1]
(the official script prints them x 100).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


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
