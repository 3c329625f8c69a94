"""What training may read (``training_inputs``, ``document_inputs``): the QA rows and eval rows with unseen-span
passages withheld, the document corpus, and the decontamination rules of harness_ext.decontamination applied to
them (near-duplicates of held-out rows dropped; leaks into the continuation probe's unseen sentences dropped, seen
passages exempt)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from harness_ext.data.qa_file import text_id, text_rows
from harness_ext.data.study import study_rows
from harness_ext.data.split import (DEFAULT_EVAL_SIZE, DOCUMENT_SUBSAMPLE_SEED_OFFSET, TRAIN_SUBSAMPLE_SEED_OFFSET,
                                    Groups, Split)
from harness_ext.decontamination import (NEAR_SPAN_WORDS, SPAN_WORDS, continuation_leaks, near_duplicates,
                                         scored_sentences, shares_long_span, span_keys, withheld_spans)
from harness_ext.decontamination import rules as decontamination_rules

@dataclass
class Corpus:
    """The document corpus of document training and what was kept out of it."""

    texts: list[str]
    passages: int  # distinct passages of the QA file kept
    passages_withheld: int  # distinct passages dropped: unseen ones, or sharing a long span with one
    document_texts: int  # texts of --document kept (not already among the passages)
    document_dropped: int  # texts of --document dropped for sharing a long span with an unseen passage
    near_dropped: int = 0  # texts dropped for sharing a NEAR_SPAN_WORDS-word span with an unseen question or answer
    # texts dropped by the continuation probe's rule (decontamination.continuation_leaks): text id -> (unseen
    # passage id, why); the id is data.text_rows' doc-<sha256>
    continuation_dropped: dict = field(default_factory=dict)
    seen_exempt: int = 0  # seen passages read although they share text with an unseen one (document_corpus)

    @property
    def sha256(self) -> str:
        return hashlib.sha256("\x00".join(self.texts).encode()).hexdigest()

    def as_dict(self) -> dict:
        return {"texts": len(self.texts), "sha256": self.sha256, "passages": self.passages,
                "passages_withheld": self.passages_withheld, "document_texts": self.document_texts,
                "document_dropped_long_span": self.document_dropped, "span_words": SPAN_WORDS,
                "dropped_near_unseen_item": self.near_dropped, "near_span_words": NEAR_SPAN_WORDS,
                "dropped_continuation_leak": len(self.continuation_dropped),
                "seen_passages_sharing_with_unseen": self.seen_exempt}


def unseen_scored(unseen: list[dict]) -> list[tuple[str, str]]:
    """The sentences the continuation probe scores in the unseen passages (``decontamination.scored_sentences``),
    each passage once, under its first row's id."""
    passages = {}
    for r in unseen:
        passages.setdefault(r["passage"].strip(), r["id"])
    return scored_sentences([(pid, text) for text, pid in passages.items() if text])


def document_corpus(rows: list[dict], unseen: list[dict], documents: list[str] = (),
                    use_passages: bool = True, embed=None, seen: list[dict] = ()) -> Corpus:
    """The texts document training reads: the distinct passages of the QA file (``use_passages``) and the
    ``documents`` texts, minus every text that shares a long span (``shares_long_span``) with an unseen passage or a
    NEAR_SPAN_WORDS-word span with an unseen question or answer, then minus every text that leaks into a sentence the
    continuation probe scores (``continuation_leaks``; ``embed`` adds its embedding rule), in file order, each once.
    The ``seen`` rows' passages are exempt from the last rule: they are what the experiment reads (dropping them
    left up to a third of the seen group unread on a fresh split), and what they share with an unseen passage can only
    make the control group look stored too, pulling the stored line towards "not stored", never towards "stored"."""
    withheld = withheld_spans(unseen)
    items = set().union(*(span_keys(r[f], NEAR_SPAN_WORDS) for r in unseen for f in ("question", "answer"))) \
        if unseen else set()
    candidates, passage_texts = [], set()
    withheld_passages = dropped_docs = near = 0
    if use_passages:
        for passage in dict.fromkeys(r["passage"].strip() for r in rows if r["passage"].strip()):
            if withheld and shares_long_span(passage, withheld):
                withheld_passages += 1
            elif items and shares_long_span(passage, items, NEAR_SPAN_WORDS):
                near += 1
            else:
                candidates.append(passage)
                passage_texts.add(passage)
    for text in dict.fromkeys(t.strip() for t in documents):
        if text in passage_texts:
            continue
        if withheld and shares_long_span(text, withheld):
            dropped_docs += 1
        elif items and shares_long_span(text, items, NEAR_SPAN_WORDS):
            near += 1
        else:
            candidates.append(text)
    exempt = {text_id(r["passage"].strip()) for r in seen}
    found = continuation_leaks([(text_id(t), t) for t in candidates], unseen_scored(unseen), embed)
    leaks = {k: v for k, v in found.items() if k not in exempt}
    texts = [t for t in candidates if text_id(t) not in leaks]
    kept_passages = sum(t in passage_texts for t in texts)
    return Corpus(texts, kept_passages, withheld_passages, len(texts) - kept_passages, dropped_docs, near, leaks,
                  len(found) - len(leaks))


def document_rows(corpus: list[str], seen: list[dict], max_rows: int | None, seed: int) -> list[dict]:
    """The document stage's plain-text rows (``{"text"}``); ``max_rows`` subsamples them (sha256 rule, seed +
    DOCUMENT_SUBSAMPLE_SEED_OFFSET), keeping every seen test passage, without which there is nothing to find."""
    rows = [{"id": text_id(t), "text": t} for t in corpus]
    if max_rows and len(rows) > max_rows:
        must = {r["passage"].strip() for r in seen}
        keep = [r for r in rows if r["text"] in must]
        others = [r for r in rows if r["text"] not in must]
        picked = Split(max(max_rows - len(keep), 1), seed + DOCUMENT_SUBSAMPLE_SEED_OFFSET).apply(others)[1] \
            if others else []
        chosen = {r["id"] for r in keep + picked}
        rows = [r for r in rows if r["id"] in chosen]
    return [{"text": r["text"]} for r in rows]


def withhold_passages(rows: list[dict], unseen: list[dict], leaking: set[str] = frozenset()) -> tuple[list[dict], int]:
    """QA rows whose passage shares a long span with an unseen passage, or leaks into the continuation probe
    (``leaking``: the rows' ids), lose that passage (they train closed-book), so that no training input holds unseen
    text; returns the rows and how many lost their passage."""
    spans = withheld_spans(unseen)
    out, n = [], 0
    for row in rows:
        if row["passage"].strip() and (row["id"] in leaking or (spans and shares_long_span(row["passage"], spans))):
            row, n = dict(row, passage=""), n + 1
        out.append(row)
    return out, n


def qa_continuation_leaks(rows: list[dict], unseen: list[dict], embed=None) -> tuple[dict, set[str]]:
    """The continuation probe's rule on QA rows: ({row id: (unseen passage id, why)} of the rows whose question or
    answer leaks into a sentence the probe scores, the ids of the rows whose passage does)."""
    scored = unseen_scored(unseen)
    texts = [(f"{r['id']}\x00{f}", r[f]) for r in rows for f in ("question", "answer", "passage") if r[f].strip()]
    found = continuation_leaks(texts, scored, embed)
    rows_out = {}
    for key, hit in sorted(found.items()):
        row_id, f = key.split("\x00")
        if f != "passage":
            rows_out.setdefault(row_id, hit)
    return rows_out, {k.split("\x00")[0] for k in found if k.endswith("\x00passage")}


@dataclass
class StudyQuestions:
    """The study questions training reads (harness_ext.data.study) and what the rules dropped."""

    rows: list[dict]
    per_text: int
    built: int
    dropped: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # id -> (rule, held-out id, why)

    def as_dict(self) -> dict:
        by_rule = {}
        for rule, _, _ in self.dropped.values():
            by_rule[rule] = by_rule.get(rule, 0) + 1
        kinds = {}
        for r in self.rows:
            kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
        return {"per_text": self.per_text, "built": self.built, "kept": len(self.rows), "kinds": kinds,
                "dropped": by_rule, "pairs": [[k, *v] for k, v in sorted(self.dropped.items())]}


def study_questions(texts: list[str], groups: Groups, per_text: int, seed: int, embed=None) -> StudyQuestions:
    """Study rows (``study.study_rows``) from ``texts`` (what the document stage reads), minus every row that breaks
    a rule: the unseen rules in full (a source text, question or answer holding a long span of an unseen passage, a
    near-duplicate of an unseen row by question or answer, a leak into the continuation probe's unseen sentences)
    and, on the seen side, a question that is a near-duplicate of a held-out question (its answer may quote the
    passage, as the held-out answers do). ``embed`` adds the rules' embedding parts."""
    built = study_rows(texts, per_text, seed)
    dropped, withheld = {}, withheld_spans(groups.unseen)
    for r in built:
        if withheld and any(shares_long_span(r[f], withheld) for f in ("passage", "question", "answer")):
            dropped[r["id"]] = ("unseen passage", "", f"shares a {SPAN_WORDS}-word span with an unseen passage")
    rest = [r for r in built if r["id"] not in dropped]
    for k, (held, why) in near_duplicates(rest, groups.unseen, embed).items():
        dropped[k] = ("unseen question", held, why)
    rest = [r for r in rest if r["id"] not in dropped]
    leaks = continuation_leaks([(f"{r['id']}\x00{f}", r[f]) for r in rest for f in ("question", "answer")],
                               unseen_scored(groups.unseen), embed)
    for key, (held, why) in sorted(leaks.items()):
        dropped.setdefault(key.split("\x00")[0], ("continuation probe", held, why))
    rest = [r for r in rest if r["id"] not in dropped]
    for k, (held, why) in near_duplicates(rest, groups.test, embed, fields=("question",)).items():
        dropped[k] = ("held-out question", held, why)
    return StudyQuestions([r for r in rest if r["id"] not in dropped], per_text, len(built), dropped)


@dataclass
class TrainingInputs:
    """Everything training may read, decided before any weight is loaded, and what was kept out of it."""

    split: Split
    groups: Groups
    train: list[dict]  # QA rows of the QA stage
    eval: list[dict]  # QA rows for eval loss
    corpus: Corpus | None  # the document corpus (None: no document stage)
    documents: list[dict]  # the document stage's rows ({"text": ...})
    passages_withheld: int  # QA rows whose passage was dropped: a long span shared with an unseen passage, or a leak
    near_duplicates: dict[str, tuple[str, str]]  # training-side rows dropped: id -> (the test id it copies, why)
    # training-side rows dropped by the continuation probe's rule: id -> (the unseen passage id, why)
    continuation_leaks: dict[str, tuple[str, str]] = field(default_factory=dict)
    study: StudyQuestions | None = None  # study questions from the readable texts (None: document_questions 0)

    def decontamination(self) -> dict:
        """What fm5_run.json records of the decontamination rules (harness_ext.decontamination), per probe."""
        corpus_leaks = {} if self.corpus is None else self.corpus.continuation_dropped
        return {"rule": decontamination_rules()["question"], "rules": decontamination_rules(),
                "rows_dropped": len(self.near_duplicates),
                "pairs": [[k, *v] for k, v in sorted(self.near_duplicates.items())],
                "document_texts_dropped": 0 if self.corpus is None else self.corpus.near_dropped,
                "continuation": {"rows_dropped": len(self.continuation_leaks),
                                 "pairs": [[k, *v] for k, v in sorted(self.continuation_leaks.items())],
                                 "document_texts_dropped": len(corpus_leaks),
                                 "document_pairs": [[k, *v] for k, v in sorted(corpus_leaks.items())]},
                "document_text_ids": sorted(text_id(r["text"]) for r in self.documents),
                "seen_passages_not_read": [] if self.corpus is None else sorted(
                    r["id"] for r in self.groups.seen if r["passage"].strip() not in set(self.corpus.texts)),
                "study_questions": None if self.study is None else self.study.as_dict()}


def training_inputs(rows: list[dict], split: Split, *, eval_size: float = DEFAULT_EVAL_SIZE,
                    max_train_rows: int | None = None, document_stage: bool = False, documents: list[str] = (),
                    use_passages: bool = True, max_document_rows: int | None = None, document_questions: int = 0,
                    embed=None) -> TrainingInputs:
    """The split and its seen/unseen halves; the training side minus every near-duplicate of a held-out row
    (``near_duplicates``: the question probes' rule) and every row whose question or answer leaks into a sentence
    the continuation probe scores (``qa_continuation_leaks``), then its eval rows (eval loss, early stopping); the
    QA rows (subsampled to ``max_train_rows``); with ``document_stage``, the document corpus and its rows, and with
    ``document_questions`` > 0 up to that many study questions per document row (``study_questions``). ``embed``
    adds both rules' embedding parts. No held-out question or answer, no near-duplicate of one, no unseen passage
    (nor text sharing a long span with one, nor a text leaking into its scored sentences) is in any of them
    (tests/test_training.py checks it on the shared file). Bad settings raise ValueError."""
    groups = split.groups(rows)
    near = near_duplicates(groups.train, groups.test, embed)
    leaks, leaking_passages = qa_continuation_leaks([r for r in groups.train if r["id"] not in near], groups.unseen,
                                                    embed)
    train, evaluation = split.eval_split([r for r in groups.train if r["id"] not in near and r["id"] not in leaks],
                                         eval_size)
    if max_train_rows and len(train) > max_train_rows:
        train = Split(max_train_rows, split.seed + TRAIN_SUBSAMPLE_SEED_OFFSET).apply(train)[1]
    train, n_withheld = withhold_passages(train, groups.unseen, leaking_passages)
    evaluation, n_withheld_eval = withhold_passages(evaluation, groups.unseen, leaking_passages)
    corpus, doc_rows = None, []
    if document_stage:
        corpus = document_corpus(rows, groups.unseen, documents, use_passages, embed, groups.seen)
        doc_rows = document_rows(corpus.texts, groups.seen, max_document_rows, split.seed)
    study = None
    if document_questions:
        if not doc_rows:
            raise ValueError("document_questions needs the document texts they are built from (document_epochs > 0)")
        study = study_questions([r["text"] for r in doc_rows], groups, document_questions, split.seed, embed)
    return TrainingInputs(split, groups, train, evaluation, corpus, doc_rows, n_withheld + n_withheld_eval, near,
                          leaks, study)


def document_inputs(texts: list[str], split: Split, max_document_rows: int | None = None,
                    embed=None) -> TrainingInputs:
    """What training may read from a document file alone (no QA file): its texts (``text_rows``) split like QA rows
    (train / seen / unseen), the document corpus = every text minus the unseen ones and any sharing a long span with
    one or leaking into a sentence the continuation probe scores (``embed`` adds the embedding rule); no QA rows."""
    rows = text_rows(texts)
    groups = split.groups(rows)
    corpus = document_corpus(rows, groups.unseen, embed=embed, seen=groups.seen)
    doc_rows = document_rows(corpus.texts, groups.seen, max_document_rows, split.seed)
    return TrainingInputs(split, groups, [], [], corpus, doc_rows, 0, {})
