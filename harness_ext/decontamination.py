"""What counts as shared text between what training reads and what the evaluation scores: one rule per probe, used
by ``fm5 train`` (``data.training_inputs`` drops or withholds before training, and ``fm5_run.json`` records what) and
by ``fm5 report`` (the same rules recomputed on what a run read, a warning naming the probe, the rule and the pairs).

- **Withholding** (``shares_long_span``): no training input holds a 13-word span of an unseen passage (GPT-3's
  decontamination n-gram); a text shorter than that counts as one span of all its words.
- **Question probes** (``near_duplicates``; ``fm5_qa_*``): a training-side question row is a near-duplicate of a held-out
  one when their questions or answers share an ``NEAR_SPAN_WORDS``-word span, or, under the probe's sentence embedding,
  the question or the answer has cosine >= ``NEAR_COSINE``, or the question >= ``NEAR_QUESTION_COSINE`` with the
  answer >= ``NEAR_ANSWER_COSINE`` (thresholds read off the shared file's closest pairs, README "Decontamination").
- **The continuation probe** (``continuation_leaks``; ``fm5_doc_mc``): a training text (a document text, a QA
  passage, question or answer) leaks into the probe's control group when it shares an ``NEAR_SPAN_WORDS``-word span
  with a sentence the probe scores in an unseen passage (``scored_sentences``: its usable sentences, golds and
  distractors alike), or, under the embedding, one of its sentences of at least ``sentences.MIN_WORDS`` words has
  cosine >= ``CONTINUATION_COSINE`` to one. Seen passages are meant to be read: only the unseen ones are protected.
  The threshold was read off the shared file's closest pairs of training sentences and unseen sentences (split seed
  42, 30 %): at and above 0.85 the pairs restate the same sentence ("Reframing is the activity of revisiting earlier
  design hypotheses..." ~ "Reframing involves revisiting earlier hypotheses..." 0.93; "A condition is a reflection of
  the existing state of an OE" ~ "A condition is a state of something essential in an OE" 0.87); below it they are
  about the same subject in other words ("CCIRs ... are key pieces of information a commander needs" ~ "staffs
  recommend information requirements for commanders to designate as CCIRs" 0.85-0.84).

Pure apart from ``embed`` (texts -> unit vectors, e.g. ``embeddings.embed``), which callers pass in.
"""

from __future__ import annotations

import re

from harness_ext.sentences import MIN_WORDS, split_sentences, usable

SPAN_WORDS = 13  # "a long span": 13 consecutive words in common (GPT-3's decontamination n-gram)
# near-duplicates of a held-out question (near_duplicates), chosen by reading the shared file's closest train/test
# pairs (README "Decontamination"): a question or an answer this close under the sentence embedding is a paraphrase
# of the item ...
NEAR_COSINE = 0.85
# ... and so is a question about the same thing with an answer on the same content
NEAR_QUESTION_COSINE, NEAR_ANSWER_COSINE = 0.75, 0.60
NEAR_SPAN_WORDS = 8  # or a question or answer sharing an 8-word span with the held-out one's
CONTINUATION_COSINE = 0.85  # a training sentence this close to an unseen sentence the continuation probe scores
# the probes as fm5_run.json, the report and the gate name them
QUESTION_PROBES, CONTINUATION_PROBE = "question probes (fm5_qa_*)", "continuation probe (fm5_doc_mc)"


def rules() -> dict:
    """Both rules' settings, as fm5_run.json records them."""
    return {"question": {"span_words": NEAR_SPAN_WORDS, "cosine": NEAR_COSINE,
                         "question_and_answer_cosine": [NEAR_QUESTION_COSINE, NEAR_ANSWER_COSINE]},
            "continuation": {"span_words": NEAR_SPAN_WORDS, "sentence_cosine": CONTINUATION_COSINE,
                             "min_sentence_words": MIN_WORDS}}


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def span_keys(text: str, n: int = SPAN_WORDS) -> set[tuple[str, ...]]:
    """The text's n-word spans (lower-cased words); a text shorter than n words is one span of all its words."""
    w = _words(text)
    if len(w) <= n:
        return {tuple(w)} if w else set()
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def withheld_spans(unseen: list[dict]) -> set[tuple[str, ...]]:
    """The spans no training input may hold: those of the unseen passages (``span_keys``)."""
    return set().union(*(span_keys(r["passage"]) for r in unseen)) if unseen else set()


def shares_long_span(text: str, withheld: set[tuple[str, ...]], n: int = SPAN_WORDS) -> bool:
    """Whether ``text`` holds a span of ``withheld`` (``span_keys`` of the withheld passages): 13 consecutive words
    in common, or all the words of a withheld passage shorter than that, in order."""
    w = _words(text)
    lengths = {len(k) for k in withheld}
    return any(tuple(w[i : i + m]) in withheld for m in lengths for i in range(len(w) - m + 1))


def near_duplicates(candidates: list[dict], test: list[dict], embed=None,
                    fields: tuple[str, ...] = ("question", "answer")) -> dict[str, tuple[str, str]]:
    """Rows of ``candidates`` that are near-duplicates of a held-out row of ``test``: ``{candidate id: (test id,
    why)}``. Lexical: the questions or the answers share a NEAR_SPAN_WORDS-word span. With ``embed`` (texts ->
    unit vectors, e.g. ``embeddings.embed``), also: question or answer cosine >= NEAR_COSINE, or question cosine >=
    NEAR_QUESTION_COSINE with answer cosine >= NEAR_ANSWER_COSINE. The first reason found is given. ``fields=
    ("question",)`` applies the question's rules alone (a span, cosine >= NEAR_COSINE): the rule for study questions
    on the seen side, whose answers may quote their passage as the held-out answers do."""
    found = {}
    if not candidates or not test:
        return found
    keys = {f: [span_keys(r[f], NEAR_SPAN_WORDS) for r in test] for f in fields}
    sims = None
    if embed is not None:
        q = embed(tuple(r["question"] for r in candidates + test))
        n = len(candidates)
        a = embed(tuple(r["answer"].strip() for r in candidates + test)) if "answer" in fields else q * 0
        sims = (q[:n] @ q[n:].T, a[:n] @ a[n:].T)
    for i, row in enumerate(candidates):
        own = {f: span_keys(row[f], NEAR_SPAN_WORDS) for f in fields}
        for j, held in enumerate(test):
            why = next((f"shares a {NEAR_SPAN_WORDS}-word span with its {f}" for f in fields
                        if not own[f].isdisjoint(keys[f][j])), None)
            if why is None and sims is not None:
                qc, ac = float(sims[0][i, j]), float(sims[1][i, j])
                if max(qc, ac) >= NEAR_COSINE or (qc >= NEAR_QUESTION_COSINE and ac >= NEAR_ANSWER_COSINE):
                    why = f"question cosine {qc:.2f}, answer cosine {ac:.2f}"
            if why is not None:
                found[row["id"]] = (held["id"], why)
                break
    return found


def scored_sentences(passages: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``(passage id, sentence)`` for the usable sentences (``sentences.usable``) of ``passages`` (``(id, text)``):
    every sentence the continuation probe can score as a gold or a distractor in them."""
    return [(pid, s) for pid, text in passages for s in split_sentences(text) if usable(s)]


def continuation_leaks(texts: list[tuple[str, str]], scored: list[tuple[str, str]], embed=None
                       ) -> dict[str, tuple[str, str]]:
    """The training texts (``(key, text)``) that leak into sentences the continuation probe scores (``scored``:
    ``(passage id, sentence)`` of the unseen passages): ``{key: (passage id, why)}``. Lexical: the text holds an
    ``NEAR_SPAN_WORDS``-word span of a scored sentence (all its words, in order, when it is shorter). With ``embed``,
    also: a sentence of the text of at least ``MIN_WORDS`` words has cosine >= ``CONTINUATION_COSINE`` to a scored
    one (each distinct sentence embedded once, in one call)."""
    found: dict[str, tuple[str, str]] = {}
    if not texts or not scored:
        return found
    owner = {}
    for pid, sentence in scored:
        for key in span_keys(sentence, NEAR_SPAN_WORDS):
            owner.setdefault(key, pid)
    lengths = sorted({len(k) for k in owner})
    for key, text in texts:
        w = _words(text)
        pid = next((owner[tuple(w[i:i + m])] for m in lengths for i in range(len(w) - m + 1)
                    if tuple(w[i:i + m]) in owner), None)
        if pid is not None:
            found[key] = (pid, f"shares {NEAR_SPAN_WORDS} consecutive words with a sentence of its passage")
    if embed is None:
        return found
    pieces = {key: [s for s in split_sentences(text) if len(s.split()) >= MIN_WORDS]
              for key, text in texts if key not in found}
    distinct = sorted({s for sents in pieces.values() for s in sents})
    if not distinct:
        return found
    import numpy as np

    targets = sorted({s for _, s in scored})
    pid_of = {}
    for pid, sentence in scored:
        pid_of.setdefault(sentence, pid)
    everything = sorted(set(distinct) | set(targets))
    row = {s: i for i, s in enumerate(everything)}
    vectors = np.asarray(embed(tuple(everything)), dtype=np.float32)
    sims = vectors[[row[s] for s in distinct]] @ vectors[[row[s] for s in targets]].T
    best, arg = sims.max(axis=1), sims.argmax(axis=1)
    row = {s: i for i, s in enumerate(distinct)}
    for key, sents in pieces.items():
        hits = [(float(best[row[s]]), targets[arg[row[s]]]) for s in sents if best[row[s]] >= CONTINUATION_COSINE]
        if hits:
            cosine, sentence = max(hits)
            found[key] = (pid_of[sentence], f"a sentence at cosine {cosine:.2f} to a sentence of its passage")
    return found
