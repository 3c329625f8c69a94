"""The FM 5-0 QA set: reading, validating, stable ids, the one train/test split and its seen/unseen halves.

This is the only module that knows the file format and the split rules; training, the lm-eval tasks, the report and
the gate all call it, so they can never disagree about which questions are held out, or whose passage training read.

Groups of a QA file (``Split.groups``):
- ``train``: the rows training learns from (question/answer pairs and passages); training carves its eval rows out
  of them (``Split.eval_split``).
- ``test``: held out, never a question/answer pair of any training input. Divided deterministically into
  ``seen`` (the passage goes into the document corpus of document training) and ``unseen`` (the passage is withheld
  from every training input, and so is any text sharing a long span with it: ``shares_long_span``). Style gains
  lift both halves; knowledge of the document lifts only the seen one.

A QA file is JSON Lines (one object per line) or a JSON array of objects. Each object needs the string fields
``passage``, ``question`` and ``answer`` (the original notebook's ``qa_pairs.jsonl`` shape); ``id`` is optional and
derived from the question and passage when absent. Every other field is kept as is.

Over 350 lines on purpose: the file format, the split and the rules of what training may read (``training_inputs``)
live in one module so that they cannot drift apart.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from harness_ext.decontamination import (NEAR_ANSWER_COSINE, NEAR_COSINE, NEAR_QUESTION_COSINE,  # noqa: F401
                                         NEAR_SPAN_WORDS, SPAN_WORDS, continuation_leaks, near_duplicates,
                                         scored_sentences, shares_long_span, span_keys, withheld_spans)
from harness_ext.decontamination import rules as decontamination_rules
from harness_ext.errors import Fm5Error

REQUIRED_FIELDS = ("passage", "question", "answer")
# fields that must hold at least one non-blank character (a passage may be empty: closed-book rows exist)
NON_EMPTY_FIELDS = ("question", "answer")
DATA_ENV = "FM5_DATA"
DEFAULT_TEST_SIZE = 0.1
DEFAULT_SEED = 42
DEFAULT_SEEN_FRACTION = 0.5
DEFAULT_EVAL_SIZE = 0.1
# every other draw is keyed by the split seed plus its own offset, so that no two draws share a ranking
EVAL_SEED_OFFSET = 1  # training's eval rows, carved out of the train side (Split.eval_split)
TRAIN_SUBSAMPLE_SEED_OFFSET = 2  # max_train_rows
DOCUMENT_SUBSAMPLE_SEED_OFFSET = 3  # max_document_rows


class DataError(Fm5Error):
    """Unusable input. ``str(err)`` is one line: ``FILE:LINE: field 'NAME': what is wrong``."""

    def __init__(self, path: str | os.PathLike, message: str, line: int | None = None, field: str | None = None):
        self.path, self.line, self.field = str(path), line, field
        where = self.path if line is None else f"{self.path}:{line}"
        what = message if field is None else f"field '{field}': {message}"
        super().__init__(f"{where}: {what}")


def existing_file(path: str | os.PathLike, what: str = "") -> Path:
    """``path`` (``~`` expanded), which must be a file; ``what`` names the setting in the error (``fm5_document``)."""
    resolved = Path(str(path)).expanduser()
    if not resolved.is_file():
        raise DataError(resolved, f"no such file ({what})" if what else "no such file")
    return resolved


def resolve_data_path(path: str | os.PathLike | None = None) -> Path:
    """The QA file to use: ``path`` if given, else ``$FM5_DATA``; a clear error when neither is set."""
    path = path or os.environ.get(DATA_ENV)
    if not path:
        raise DataError(
            "<fm5 data>",
            f"no QA file given: pass --metadata '{{\"fm5_data\": \"PATH\"}}' to lm_eval, "
            f"--data PATH to fm5, or set {DATA_ENV}=PATH",
        )
    return existing_file(path)


def split_seed(value=None, alias=None) -> int:
    """The split seed from task metadata: ``fm5_split_seed`` (``value``), or its older name ``fm5_seed`` (``alias``),
    else DEFAULT_SEED; the two given with different values is an error."""
    if value is not None and alias is not None and int(value) != int(alias):
        raise DataError("<task metadata>", f"fm5_split_seed={value} and fm5_seed={alias} name one setting; give one")
    chosen = value if value is not None else alias
    return DEFAULT_SEED if chosen is None else int(chosen)


def derive_id(row: dict) -> str:
    """A stable id for a row without one: the same text gives the same id in every process."""
    digest = hashlib.sha256(f"{row['question']}\x00{row['passage']}".encode()).hexdigest()
    return f"q-{digest[:12]}"


def file_sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _parse(path: Path, raw: bytes) -> list[tuple[int, object]]:
    """(line number, parsed object) for each record of a JSONL or JSON-array file."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(path, f"invalid UTF-8 (byte {err.start})", line=line) from None
    if not text.strip():
        raise DataError(path, "the file is empty")
    stripped = text.lstrip()
    if stripped.startswith("["):
        first_line = text[: len(text) - len(stripped)].count("\n") + 1
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(path, f"malformed JSON: {err.msg}", line=err.lineno) from None
        except (RecursionError, ValueError) as err:  # nested too deeply; an integer of over 4300 digits
            raise DataError(path, f"malformed JSON: {_reason(err)}", line=first_line) from None
        if not isinstance(records, list):
            raise DataError(path, "a JSON file holds one array of rows", line=first_line)
        # objects of a pretty-printed array do not have a line each; report the array position instead
        return [(first_line if len(records) == 1 else i + 1, rec) for i, rec in enumerate(records)]
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((lineno, json.loads(line)))
        except json.JSONDecodeError as err:
            raise DataError(path, f"malformed JSON: {err.msg} (column {err.colno})", line=lineno) from None
        except (RecursionError, ValueError) as err:
            raise DataError(path, f"malformed JSON: {_reason(err)}", line=lineno) from None
    return out


def _reason(err: Exception) -> str:
    return "nested too deeply" if isinstance(err, RecursionError) else str(err).split(";")[0][:100]


def load_qa(path: str | os.PathLike) -> list[dict]:
    """Read and validate a QA file; rows come back in file order, each with a string ``id``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(path, err.strerror or str(err)) from None
    records = _parse(path, raw)
    if not records:
        raise DataError(path, "the file holds no rows")
    rows, seen = [], {}
    for lineno, rec in records:
        if not isinstance(rec, dict):
            raise DataError(path, f"expected a JSON object, got {type(rec).__name__}", line=lineno)
        for field in REQUIRED_FIELDS:
            if field not in rec:
                raise DataError(path, "missing", line=lineno, field=field)
            if not isinstance(rec[field], str):
                raise DataError(path, f"must be a string, got {type(rec[field]).__name__}", line=lineno, field=field)
            try:
                rec[field].encode("utf-8")
            except UnicodeEncodeError as err:
                raise DataError(path, f"holds an unpaired surrogate escape at character {err.start}, not text",
                                line=lineno, field=field) from None
        for field in NON_EMPTY_FIELDS:
            if not rec[field].strip():
                raise DataError(path, "is empty", line=lineno, field=field)
        row = dict(rec)
        if "id" in row:
            if not isinstance(row["id"], (str, int)) or isinstance(row["id"], bool) or str(row["id"]).strip() == "":
                raise DataError(path, "must be a non-empty string or integer", line=lineno, field="id")
            row["id"] = str(row["id"])
            if not row["id"].isprintable() or row["id"] != row["id"].encode("utf-8", "replace").decode("utf-8"):
                raise DataError(path, "must be printable text (no control characters or surrogate escapes)",
                                line=lineno, field="id")
        else:
            row["id"] = derive_id(row)
        if row["id"] in seen:
            raise DataError(
                path, f"duplicate id {row['id']!r} (first on line {seen[row['id']]})", line=lineno, field="id"
            )
        seen[row["id"]] = lineno
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Split:
    """Which rows are held out, and which held-out passages training may read. Depends only on the ids, the sizes
    and the seed: not on file order or process."""

    test_size: float = DEFAULT_TEST_SIZE
    seed: int = DEFAULT_SEED
    seen_fraction: float = DEFAULT_SEEN_FRACTION

    def n_test(self, n_rows: int) -> int:
        if self.test_size >= 1:
            n = int(self.test_size)
        elif 0 < self.test_size < 1:
            n = round(self.test_size * n_rows)
        else:
            raise ValueError(f"test_size must be a fraction in (0, 1) or a row count >= 1, got {self.test_size}")
        return min(max(n, 1), n_rows - 1) if n_rows > 1 else 0

    def _rank(self, row_id: str, salt: str = "fm5-split") -> str:
        return hashlib.sha256(f"{salt}:{self.seed}:{row_id}".encode()).hexdigest()

    def test_ids(self, rows: list[dict]) -> set[str]:
        ranked = sorted((r["id"] for r in rows), key=self._rank)
        return set(ranked[: self.n_test(len(rows))])

    def apply(self, rows: list[dict]) -> tuple[list[dict], list[dict]]:
        """(train, test), each in file order."""
        test = self.test_ids(rows)
        return [r for r in rows if r["id"] not in test], [r for r in rows if r["id"] in test]

    def seen_ids(self, rows: list[dict]) -> set[str]:
        """The test ids whose passages document training reads: the first round(seen_fraction x n_test) test ids
        by ``sha256("fm5-seen:SEED:ID")``."""
        if not 0 <= self.seen_fraction <= 1:
            raise ValueError(f"seen_fraction must be in [0, 1], got {self.seen_fraction}")
        test = sorted(self.test_ids(rows), key=lambda i: self._rank(i, "fm5-seen"))
        return set(test[: round(self.seen_fraction * len(test))])

    def groups(self, rows: list[dict]) -> Groups:
        """The ``train``, ``test``, ``seen`` and ``unseen`` rows (``seen`` + ``unseen`` = ``test``), in file order."""
        train, test = self.apply(rows)
        seen = self.seen_ids(rows)
        return Groups(train, test, [r for r in test if r["id"] in seen], [r for r in test if r["id"] not in seen])

    def eval_split(self, train: list[dict], eval_size: float = DEFAULT_EVAL_SIZE) -> tuple[list[dict], list[dict]]:
        """(train, eval): training's eval rows (eval loss, early stopping), carved out of the train side with the
        same rule and seed + EVAL_SEED_OFFSET; none when eval_size is 0."""
        if not eval_size:
            return train, []
        return Split(eval_size, self.seed + EVAL_SEED_OFFSET).apply(train)

    def as_dict(self) -> dict:
        return {"test_size": self.test_size, "seed": self.seed, "rule": "sha256(fm5-split:SEED:ID) ascending",
                "seen_fraction": self.seen_fraction, "seen_rule": "test ids by sha256(fm5-seen:SEED:ID) ascending"}


@dataclass(frozen=True)
class Groups:
    """A QA file's rows by role (``Split.groups``), each list in file order."""

    train: list[dict]  # what training may learn from
    test: list[dict]  # held out: seen + unseen
    seen: list[dict]  # held out; document training reads their passages
    unseen: list[dict]  # held out; their passages (and any text sharing a long span with one) are withheld

    @property
    def unseen_ids(self) -> set[str]:
        return {r["id"] for r in self.unseen}

    def ids(self) -> dict[str, list[str]]:
        """The held-out ids as fm5_run.json and `fm5 data --ids` list them."""
        return {"test_ids": [r["id"] for r in self.test], "test_seen_ids": [r["id"] for r in self.seen],
                "test_unseen_ids": [r["id"] for r in self.unseen]}

    def summary(self) -> dict[str, int]:
        return {"test": len(self.test), "test_seen": len(self.seen), "test_unseen": len(self.unseen)}


def text_rows(texts: list[str]) -> list[dict]:
    """A document file's texts as rows with stable ids (``doc-`` + 12 hex of the text's sha256), each text once;
    ``passage`` holds the text, so that ``Split`` and the span rule treat them like QA rows' passages (a document
    file alone: ``document_inputs`` and the continuation probe)."""
    return [{"id": text_id(t), "passage": t, "question": "", "answer": ""}
            for t in dict.fromkeys(t.strip() for t in texts if t.strip())]


def load_documents(path: str | os.PathLike) -> list[str]:
    """A document file for document training: JSONL (or a JSON array) of objects with a string ``text`` field (e.g.
    ``fm5_chunks.jsonl``: the whole manual by page chunk). Blank texts are skipped."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(path, err.strerror or str(err)) from None
    texts = []
    for lineno, rec in _parse(path, raw):
        if not isinstance(rec, dict):
            raise DataError(path, f"expected a JSON object, got {type(rec).__name__}", line=lineno)
        if "text" not in rec:
            raise DataError(path, "missing", line=lineno, field="text")
        if not isinstance(rec["text"], str):
            raise DataError(path, f"must be a string, got {type(rec['text']).__name__}", line=lineno, field="text")
        if rec["text"].strip():
            texts.append(rec["text"].strip())
    if not texts:
        raise DataError(path, "the file holds no text")
    return texts


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


def text_id(text: str) -> str:
    """A text's stable id: ``doc-`` + 12 hex of its sha256 (document rows, ``text_rows``, fm5_run.json)."""
    return f"doc-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


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
                    r["id"] for r in self.groups.seen if r["passage"].strip() not in set(self.corpus.texts))}


def training_inputs(rows: list[dict], split: Split, *, eval_size: float = DEFAULT_EVAL_SIZE,
                    max_train_rows: int | None = None, document_stage: bool = False, documents: list[str] = (),
                    use_passages: bool = True, max_document_rows: int | None = None, embed=None) -> TrainingInputs:
    """The split and its seen/unseen halves; the training side minus every near-duplicate of a held-out row
    (``near_duplicates``: the question probes' rule) and every row whose question or answer leaks into a sentence
    the continuation probe scores (``qa_continuation_leaks``), then its eval rows (eval loss, early stopping); the
    QA rows (subsampled to ``max_train_rows``); with ``document_stage``, the document corpus and its rows. ``embed``
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
    return TrainingInputs(split, groups, train, evaluation, corpus, doc_rows, n_withheld + n_withheld_eval, near,
                          leaks)


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


def test_doc(row: dict, unseen: set[str]) -> dict:
    """A held-out row as the tasks log it: id, passage, question, answer and its ``group`` (seen / unseen)."""
    return {"id": row["id"], "passage": row["passage"], "question": row["question"], "answer": row["answer"],
            "group": "unseen" if row["id"] in unseen else "seen"}


def load_test_docs(path: str | os.PathLike | None = None, test_size: float = DEFAULT_TEST_SIZE,
                   seed: int = DEFAULT_SEED, seen_fraction: float = DEFAULT_SEEN_FRACTION) -> list[dict]:
    """The test split of ``path`` (or ``$FM5_DATA``) as task documents (``test_doc``), in file order."""
    groups = Split(test_size, seed, seen_fraction).groups(load_qa(resolve_data_path(path)))
    return [test_doc(r, groups.unseen_ids) for r in groups.test]


def load_split(
    path: str | os.PathLike | None = None, test_size: float = DEFAULT_TEST_SIZE, seed: int = DEFAULT_SEED
) -> tuple[list[dict], list[dict]]:
    """Load ``path`` (or ``$FM5_DATA``) and return its (train, test) rows."""
    return Split(test_size, seed).apply(load_qa(resolve_data_path(path)))
