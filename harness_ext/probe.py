"""The multiple-choice knowledge probe: which options each held-out question gets.

Free-text answers differ in style from anything a base model would write, so answer perplexity falls when a model
only learns that style. The probe asks the model to rank options that all share it: the gold answer and K answers
of *other* rows of the same QA file (any split: they are options, not training data).

The rule, deterministic for a given file and settings (no process, order or machine dependence beyond float
rounding at the 4th decimal of a cosine):
1. Every answer (``prompts.completion_text``) is embedded with a sentence embedding (the packaged all-MiniLM-L6-v2
   by default: mean pooling, L2-normalised).
2. Candidates for a question are the answers of the other questions *of its own group* (the seen/unseen split,
   ``data.Split.groups``): a seen question's options are other seen answers, an unseen question's other unseen
   answers. So no option is ever a training answer, and the gold and its distractors share their exposure in both
   groups (every seen option's passage was read, no unseen one's): only the question can pick the gold. (Version
   1.0 drew a seen question's options from every row outside the unseen group: mostly training answers, made
   familiar by the QA stage, while the gold's passage had been read many times and theirs mostly never.) Without
   groups (``build_items`` called with none) every other row is a candidate. Near-duplicates of the
   gold are dropped: the same SQuAD-normalised text, or cosine similarity >= ``MAX_COSINE`` (0.95: paraphrases of
   the gold would be correct answers too). A candidate whose normalised text equals a chosen distractor is skipped.
3. The K most similar candidates to the gold are its distractors (hard negatives), by cosine rounded to 4 decimals,
   ties broken by ``sha256("fm5-mc:SEED:ID")`` of the candidate's row.
4. The gold goes to position ``int(sha256("fm5-mc:SEED:ID")) mod (K + 1)`` of the question; the distractors fill the
   other positions, most similar first.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from harness_ext import data, embeddings, metrics, prompts
from harness_ext.errors import UsageError

MAX_COSINE = 0.95
DEFAULT_DISTRACTORS = 3


@dataclass(frozen=True)
class Item:
    choices: tuple[str, ...]
    gold: int
    distractor_ids: tuple[str, ...]


def distractor_count(value) -> int:
    """``fm5_mc_distractors`` as given in --metadata: an integer >= 1."""
    try:
        k = int(value)
        if k != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise UsageError(f"fm5_mc_distractors must be an integer >= 1, got {value!r}") from None
    if k < 1:
        raise UsageError(f"fm5_mc_distractors must be an integer >= 1, got {k}")
    return k


def _hash(seed: int, row_id: str) -> int:
    return int(hashlib.sha256(f"fm5-mc:{seed}:{row_id}".encode()).hexdigest(), 16)


def hard_negatives(emb, gold: int, pool, normalized, tie, k: int, taken=()) -> list[int]:
    """The ``k`` indices of ``pool`` most similar to ``gold`` (rows of unit vectors ``emb``; cosine to 4 decimals,
    ties by ``tie[i]``), skipping near-duplicates of the gold (cosine >= MAX_COSINE or the same ``normalized``
    text), repeats of a chosen text and texts in ``taken``; fewer when the pool runs out. The question probe and
    the continuation probe (``continuation``) both choose their distractors here."""
    import numpy as np

    cos = np.round(emb[list(pool)] @ emb[gold], 4) if len(pool) else []
    order = sorted(zip(pool, cos), key=lambda ic: (-ic[1], tie[ic[0]]))
    chosen, texts = [], {normalized[gold], *taken}
    for i, c in order:
        if c >= MAX_COSINE or normalized[i] in texts:
            continue
        chosen.append(i)
        texts.add(normalized[i])
        if len(chosen) == k:
            break
    return chosen


def build_items(rows: list[dict], questions: list[dict], k: int, embeddings, seed: int = data.DEFAULT_SEED,
                where: str | os.PathLike = "<qa file>", groups: dict[str, str] | None = None) -> dict[str, Item]:
    """Options for each of ``questions`` (rows of ``rows``), with ``embeddings[i]`` the unit vector of
    ``rows[i]``'s answer; ``groups``: each held-out id's group (seen / unseen), whose options come from that group
    only (None: from every row)."""
    import numpy as np

    k = distractor_count(k)
    if len(rows) < k + 1:
        raise data.DataError(where, f"{len(rows)} row(s); the multiple-choice probe needs at least "
                                    f"fm5_mc_distractors + 1 = {k + 1} (the gold answer and {k} distractors)")
    index = {r["id"]: i for i, r in enumerate(rows)}
    answers = [prompts.completion_text(r) for r in rows]
    normalized = [metrics.normalize_answer(a) for a in answers]
    tie = [_hash(seed, r["id"]) for r in rows]
    emb = np.asarray(embeddings, dtype=np.float32)
    items = {}
    for q in questions:
        g = index[q["id"]]
        group = None if groups is None else groups[q["id"]]
        pool = [i for i in range(len(rows)) if i != g and (groups is None or groups.get(rows[i]["id"]) == group)]
        chosen = hard_negatives(emb, g, pool, normalized, tie, k)
        if len(chosen) < k:
            pool = "rows" if group is None else f"{group} group"
            hint = "" if group is None else (
                f" (the {group} group has {sum(g == group for g in groups.values())} questions: use a larger file, a "
                f"larger test split or a smaller fm5_mc_distractors)")
            raise data.DataError(where, f"question {q['id']!r}: only {len(chosen)} other answer(s) of the {pool} "
                                        f"differ from its gold answer; the probe needs fm5_mc_distractors = {k}"
                                        + hint)
        position = _hash(seed, q["id"]) % (k + 1)
        choices = [answers[i] for i in chosen]
        choices.insert(position, answers[g])
        items[q["id"]] = Item(tuple(choices), position, tuple(rows[i]["id"] for i in chosen))
    return items


def load_mc_docs(path=None, test_size: float = data.DEFAULT_TEST_SIZE, seed: int = data.DEFAULT_SEED,
              k=DEFAULT_DISTRACTORS, embedding: str | None = None,
              seen_fraction: float = data.DEFAULT_SEEN_FRACTION) -> list[dict]:
    """The test split of ``path`` (or $FM5_DATA) as probe documents: ``{id, passage, question, answer, group,
    choices, gold}``, in file order."""
    k = distractor_count(k)
    resolved = data.resolve_data_path(path)
    rows = data.load_qa(resolved)
    groups = data.Split(test_size, seed, seen_fraction).groups(rows)
    unseen = groups.unseen_ids
    model = embeddings.embedding_model(embedding)
    vectors = embeddings.cached(tuple(prompts.completion_text(r) for r in rows), model["model"])
    by_id = {r["id"]: "unseen" if r["id"] in unseen else "seen" for r in groups.test}
    items = build_items(rows, groups.test, k, vectors, seed, resolved, by_id)
    return [{**data.test_doc(r, unseen), "choices": list(items[r["id"]].choices), "gold": items[r["id"]].gold}
            for r in groups.test]
