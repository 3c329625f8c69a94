"""Sentences of FM 5-0's text: one splitter and one rule for a sentence worth scoring, shared by the continuation
probe (``continuation``: its golds and distractors) and the decontamination rule that protects them
(``decontamination.continuation_leaks``), so that both see the same sentences.

1. ``split_sentences``: whitespace collapsed; a break after ``.``, ``!`` or ``?`` (and any closing quote or bracket)
   before an upper-case letter, a digit or an opening quote or bracket; no break after a known abbreviation
   (``ABBREVIATIONS``) or a single capital initial; a piece of fewer than ``MIN_PIECE_WORDS`` words (e.g. a paragraph
   number "1-23.") is joined to the next sentence.
2. ``usable``: ``MIN_WORDS``..``MAX_WORDS`` words, at least ``MIN_ALPHA`` of them alphabetic, no run of three dots
   (tables of contents).
"""

from __future__ import annotations

import re

ABBREVIATIONS = frozenset(
    "e.g. i.e. etc. vs. cf. no. nos. fig. figs. para. paras. chap. app. vol. pp. p. ed. mr. mrs. ms. dr. st. "
    "gen. col. lt. maj. capt. sgt. cpl. pvt. adm. cmdr. u.s. u.k. jan. feb. mar. apr. jun. jul. aug. sep. sept. "
    "oct. nov. dec. approx. est. min. max. dept. inc. co. corp.".split())
MIN_PIECE_WORDS = 3  # a shorter piece (a paragraph number, a stray heading) is joined to the next sentence
MIN_WORDS, MAX_WORDS, MIN_ALPHA = 6, 60, 0.7
_BREAK = re.compile(r"(?<=[.!?])([\"'\u201d)\]]*)\s+(?=[\"'\u201c(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` by the rule of this module's docstring (1.)."""
    text = " ".join(text.split())
    pieces, start = [], 0
    for m in _BREAK.finditer(text):
        end = m.start() + len(m.group(1))
        last = text[start:end].rsplit(" ", 1)[-1].lower()
        if last in ABBREVIATIONS or re.fullmatch(r"[a-z]\.", last):
            continue
        pieces.append(text[start:end])
        start = m.end()
    pieces.append(text[start:])
    out, carry = [], ""
    for piece in (p.strip() for p in pieces if p.strip()):
        piece = f"{carry} {piece}".strip() if carry else piece
        if len(piece.split()) < MIN_PIECE_WORDS:
            carry = piece
            continue
        out.append(piece)
        carry = ""
    if carry:
        out = out[:-1] + [f"{out[-1]} {carry}"] if out else [carry]
    return out


def usable(sentence: str) -> bool:
    """Can be a gold or a distractor (this module's docstring, 2.)."""
    words = sentence.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS or "..." in sentence:
        return False
    return sum(any(c.isalpha() for c in w) for w in words) >= MIN_ALPHA * len(words)
