"""The passage-continuation probe (task ``fm5_doc_mc``): was the document's text *stored*?

The question probe (``probe``) asks whether a fact can be retrieved by a question. This one asks whether the text
itself was stored: given the start of a held-out passage, does the model rank the passage's true next sentence
above sentences of other passages? Same seen / unseen groups as the question probe, so the same diff-in-diff
separates "read this text" from "learned the manual's style".

Items, deterministic for a given file and settings (the rules were fixed before any run measured them; 1 and 2 live
in ``harness_ext.sentences``, which the decontamination rule that protects this probe shares):
1. Sentences (``split_sentences``): whitespace collapsed; a break after ``.``, ``!`` or ``?`` (and any closing
   quote or bracket) before an upper-case letter, a digit or an opening quote or bracket; no break after a known
   abbreviation (``ABBREVIATIONS``) or a single capital initial; a piece of fewer than ``MIN_PIECE_WORDS`` words
   (e.g. a paragraph number "1-23.") is joined to the next sentence.
2. A sentence can be a gold or a distractor when it is *usable*: ``MIN_WORDS``..``MAX_WORDS`` words, at least
   ``MIN_ALPHA`` of them alphabetic, no run of three dots (tables of contents). Items sit at the usable sentences
   with at least one sentence before them; at most ``MAX_ITEMS`` per passage, evenly spaced over those positions
   (first and last kept).
3. Context: up to ``CONTEXT_SENTENCES`` preceding sentences of the same passage, plain text (no chat template: the
   document stage trains plain text). Options: ``" " + sentence``.
4. Distractors: the ``K`` usable sentences of *other passages of the same group* (seen from seen, unseen from
   unseen: the same exposure as the gold) most similar to the gold under the probe's sentence embedding (cosine to
   4 decimals, ties by ``sha256("fm5-doc:SEED:ITEM")`` of the candidate), dropping near-duplicates of the gold
   (cosine >= ``probe.MAX_COSINE`` or the same normalised text) and any sentence of the item's own passage. The
   gold goes to position ``sha256("fm5-doc:SEED:ITEM") mod (K + 1)``, as in the question probe.

Units: an item carries its passage's ``id`` (the held-out question's id, or a document text's ``doc-<sha256>``) and
``group``; the report averages a passage's items into one value per passage before the diff-in-diff, because the
randomization is by passage (the seen/unseen hash), not by sentence.

Two sources: a QA file (the passages of its held-out questions; a passage held by several of them is one unit, under
its first question's id, and unseen if any of them is) or a document file alone (``fm5_document``: its texts split
into train / seen / unseen by the same sha256 rules over ids ``doc-<sha256 of the text>``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from harness_ext import data, embeddings, metrics, probe
from harness_ext.sentences import MAX_WORDS, MIN_WORDS, split_sentences, usable  # noqa: F401 (this probe's rules)

MAX_ITEMS = 4  # items per passage
CONTEXT_SENTENCES = 3
DEFAULT_DISTRACTORS = probe.DEFAULT_DISTRACTORS
# recorded in the results (task metadata fm5_doc_rule): the items depend on these settings
RULE = (f"sentences of {MIN_WORDS}-{MAX_WORDS} words; <= {MAX_ITEMS} items per passage; context <= "
        f"{CONTEXT_SENTENCES} preceding sentences; distractors from other passages of the same group")


def positions(sentences: list[str], cap: int = MAX_ITEMS) -> list[int]:
    """Indices of the sentences that become items: usable, not the first; at most ``cap``, evenly spaced."""
    candidates = [i for i in range(1, len(sentences)) if usable(sentences[i])]
    if len(candidates) <= cap:
        return candidates
    return [candidates[round(j * (len(candidates) - 1) / (cap - 1))] for j in range(cap)] if cap > 1 \
        else candidates[:1]


@dataclass(frozen=True)
class Unit:
    """A passage of the probe: its id (the held-out question's, or ``doc-<sha256>``), text and group."""

    id: str
    text: str
    group: str  # "seen" / "unseen"


def _hash(seed: int, key: str) -> int:
    return int(hashlib.sha256(f"fm5-doc:{seed}:{key}".encode()).hexdigest(), 16)


def build_items(units: list[Unit], k: int, embed, seed: int = data.DEFAULT_SEED,
                where: str | os.PathLike = "<document>") -> list[dict]:
    """Task documents ``{id, item, group, context, choices, gold, distractor_ids}`` (the passages the distractors come from) for ``units``; ``embed``: texts
    -> unit vectors (``embeddings.embed``). Pure apart from ``embed``."""
    import numpy as np

    k = probe.distractor_count(k)
    sentences = {u.id: split_sentences(u.text) for u in units}
    pool = [(u.id, u.group, s) for u in units for s in sentences[u.id] if usable(s)]
    if not pool:
        raise data.DataError(where, "no usable sentence in the held-out texts for the continuation probe")
    emb = np.asarray(embed(tuple(s for _, _, s in pool)), dtype=np.float32)
    normalized = [metrics.normalize_answer(s) for _, _, s in pool]
    index = {(uid, s): i for i, (uid, _, s) in enumerate(pool)}
    tie = [_hash(seed, f"{uid}#{s}") for uid, _, s in pool]
    docs = []
    for unit in units:
        own = {metrics.normalize_answer(s) for s in sentences[unit.id]}
        candidates = [i for i, (uid, group, _) in enumerate(pool) if group == unit.group and uid != unit.id]
        for p in positions(sentences[unit.id]):
            gold_text, item = sentences[unit.id][p], f"{unit.id}#{p}"
            g = index[(unit.id, gold_text)]
            chosen = probe.hard_negatives(emb, g, candidates, normalized, tie, k, taken=own)
            if len(chosen) < k:
                raise data.DataError(where, f"passage {unit.id!r}: only {len(chosen)} sentence(s) of other "
                                            f"{unit.group} passages differ from its sentence {p}; the continuation "
                                            f"probe needs {k} (use more held-out texts or a smaller "
                                            f"fm5_mc_distractors)")
            position = _hash(seed, item) % (k + 1)
            choices = [" " + pool[i][2] for i in chosen]
            choices.insert(position, " " + gold_text)
            docs.append({"id": unit.id, "item": item, "group": unit.group,
                         "context": " ".join(sentences[unit.id][max(0, p - CONTEXT_SENTENCES):p]),
                         "choices": choices, "gold": position,
                         "distractor_ids": [pool[i][0] for i in chosen]})
    return docs


def qa_units(rows: list[dict], split: data.Split) -> list[Unit]:
    """The passages of a QA file's held-out questions, one unit per distinct passage (file order)."""
    groups = split.groups(rows)
    unseen_text = {r["passage"].strip() for r in groups.unseen}
    units = {}
    for row in groups.test:
        text = row["passage"].strip()
        if text and text not in units:
            units[text] = Unit(row["id"], text, "unseen" if text in unseen_text else "seen")
    return list(units.values())


def document_units(texts: list[str], split: data.Split) -> list[Unit]:
    """A document file's held-out texts: ``split`` over the ids of ``data.text_rows`` (train / seen / unseen), as
    ``data.document_inputs`` splits them for training."""
    groups = split.groups(data.text_rows(texts))
    unseen = groups.unseen_ids
    return [Unit(r["id"], r["passage"], "unseen" if r["id"] in unseen else "seen") for r in groups.test]


def load_doc_docs(path=None, document=None, test_size: float = data.DEFAULT_TEST_SIZE, seed: int = data.DEFAULT_SEED,
              k=DEFAULT_DISTRACTORS, embedding: str | None = None,
              seen_fraction: float = data.DEFAULT_SEEN_FRACTION) -> tuple[list[dict], str]:
    """The probe's documents and the file they came from: ``document`` (a document file alone) when given, else the
    QA file ``path`` (or $FM5_DATA)."""
    split = data.Split(test_size, seed, seen_fraction)
    if document:
        source = data.existing_file(document, "fm5_document")
        units = document_units(data.load_documents(source), split)
    else:
        source = data.resolve_data_path(path)
        units = qa_units(data.load_qa(source), split)
    return build_items(units, k, lambda texts: embeddings.embed(texts, embedding), seed, source), str(source)
