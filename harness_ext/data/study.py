"""Study questions: question/answer rows built by rule from the texts training may read (``document_questions: N``,
at most N per text; 0, the default, builds none), trained closed-book in the QA rows' chat format.

Why: a fact stored as a continuation of its passage is not reached by a question (the suite's own verdict on its
recipe); Self-Tuning (Zhang et al., 2025) builds study tasks from the text itself (fill-in-the-blank, definitions)
and reports large gains over continued pretraining alone. No strong offline generator is packaged, so the rows come
from rules over the text (``study_rows``), one sentence of the text each, the answer taken from it:

- **definition**: a sentence "TERM is/are/refers to/means a(n)/the DEFINITION." gives "What is TERM?" -> the sentence;
- **term** (the reverse direction): the same sentence gives "What is the term for DEFINITION?" -> TERM;
- **cloze** (fill in the blank): a sentence holding a key term (a TERM defined in any readable text, or an acronym
  of 3+ capitals) gives "Fill in the blank: ... ____ ..." -> the term.

A sentence must be usable (``sentences.usable``); a TERM is 1-6 words and not a pronoun; a DEFINITION at least
``MIN_DEFINITION_WORDS`` words (so that a reversed row carries a span the decontamination rules can see). Candidates are ranked per
text by ``sha256("fm5-study:SEED:TEXT:QUESTION")`` and the first N kept, so a run is reproducible.

They are document text in another form, so ``withholding.study_questions`` applies the unseen rules to them in full
and drops a question that is a near-duplicate of any held-out question; this module only builds.
"""

from __future__ import annotations

import functools
import hashlib
import re

from harness_ext.data.qa_file import text_id
from harness_ext.sentences import split_sentences, usable

_DEFINITION = re.compile(r"^(?:(?:An?|The) )?(?P<term>[A-Za-z][\w’'\-]*(?: [\w’'\-]+){0,5}) "
                         r"(?P<verb>is|are|refers to|means) (?P<defn>(?:an?|the) .{15,})$")
_PARAGRAPH = re.compile(r"^\d+-\d+\.\s+")  # "2-44. " paragraph numbers of FM 5-0
_ACRONYM = re.compile(r"\b[A-Z]{3,}s?\b")
_NOT_TERMS = {"it", "this", "that", "these", "they", "there", "which", "each", "one", "he", "she", "what"}
_NOT_ACRONYMS = {"FM", "ADP", "ATP", "JP", "AND", "OF", "THE", "FOR", "TO", "IN", "ON", "ARMY", "PLANNING"}
KINDS = ("definition", "term", "cloze")
MIN_DEFINITION_WORDS = 8  # = decontamination.NEAR_SPAN_WORDS


def _sentences(text: str) -> list[str]:
    return [s for s in (_PARAGRAPH.sub("", s).strip() for s in split_sentences(text)) if usable(s)]


def definitions(text: str) -> list[tuple[str, str, str, str]]:
    """(sentence, term, verb, definition) of each definition sentence of ``text``."""
    out = []
    for sentence in _sentences(text):
        m = _DEFINITION.match(sentence.rstrip("."))
        if m and m.group("term").split()[0].lower() not in _NOT_TERMS and \
                len(m.group("defn").split()) >= MIN_DEFINITION_WORDS:
            out.append((sentence, m.group("term"), m.group("verb"), m.group("defn")))
    return out


def key_terms(texts: list[str]) -> set[str]:
    """The terms cloze rows blank out: every TERM defined in ``texts`` and their acronyms of 3+ capitals."""
    terms = {term for t in texts for _, term, _, _ in definitions(t) if len(term) >= 4}
    terms |= {a for t in texts for a in _ACRONYM.findall(t) if a.rstrip("s") not in _NOT_ACRONYMS}
    return terms


@functools.cache
def _word(term: str) -> re.Pattern:
    """``term`` as a whole word (compiled once: a corpus asks for thousands of terms in thousands of sentences, more
    patterns than ``re`` keeps compiled)."""
    return re.compile(rf"\b{re.escape(term)}\b")


def candidates(text: str, terms: set[str]) -> list[dict]:
    """Every study row ``text`` gives (module docstring), in sentence order."""
    rows = []
    for sentence, term, verb, defn in definitions(text):
        be = "are" if verb == "are" else "is"
        rows.append({"kind": "definition", "question": f"What {be} {term}?", "answer": sentence})
        rows.append({"kind": "term", "question": f"What is the term for {defn}?", "answer": term})
    for sentence in _sentences(text):
        # the substring test first: the word-bounded search only for the few terms the sentence holds at all
        found = sorted((t for t in terms if t in sentence and _word(t).search(sentence)), key=lambda t: (-len(t), t))
        if found:
            blanked = _word(found[0]).sub("____", sentence, count=1)
            rows.append({"kind": "cloze", "question": f"Fill in the blank: {blanked}", "answer": found[0]})
    return rows


def study_rows(texts: list[str], per_text: int, seed: int) -> list[dict]:
    """At most ``per_text`` study rows from each text (``candidates``, ranked by sha256, duplicates once), as QA rows
    (``id`` ``study-<sha256>``, ``passage`` the source text, ``question``, ``answer``, ``kind``, ``source``: the text's
    id)."""
    if per_text <= 0:
        return []
    terms, out, questions = key_terms(texts), [], set()
    for text in texts:
        ranked = sorted(candidates(text, terms),
                        key=lambda r: hashlib.sha256(f"fm5-study:{seed}:{text}:{r['question']}".encode()).hexdigest())
        kept = 0
        for row in ranked:
            if kept == per_text:
                break
            if row["question"] in questions:
                continue
            questions.add(row["question"])
            key = hashlib.sha256(f"{row['question']}\x00{row['answer']}".encode()).hexdigest()[:16]
            out.append({"id": f"study-{key}", "passage": text, "source": text_id(text), **row})
            kept += 1
    return out
