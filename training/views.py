"""Document views: each pass of the document stage shows a passage differently, instead of the same text
``document_epochs`` times (``document_views: shuffle``, default ``none``; ``document_headings: true``).

Why: Allen-Zhu and Li ("Physics of Language Models 3.1", ICML 2024) trained one fixed text per person and got 9.7 %
QA accuracy on held-out people; the same text in five sentence orders gave 70 %, and the person's full name in every
sentence helped too. A fact seen in one context only is stored as a continuation of that context; views make it
reachable from others.

- ``shuffle``: the first pass shows the text as written (the continuation probe scores sentences in that order);
  every later pass shows its sentences (``harness_ext.sentences.split_sentences``, the probe's own splitter) in an
  order drawn from ``sha256("fm5-view:SEED:PASS:TEXT")``, so a run is reproducible and each pass differs.
- ``headings``: every sentence of every pass is prefixed with the text's heading (the analogue of the full name),
  ``"Heading: sentence"``. A heading is the chapter title of FM 5-0's running page header
  (``"Army Design Methodology 04 November 2024 FM 5-0 61"``): a text's own header if it has one, else the header of
  the nearest readable text at or before its page (``page`` of the QA file's rows, when present; a ``--document``
  text has no page and keeps its own header or none). Only texts training may read are looked at.

One view is one row: two views of one passage never share a sequence (views refuse ``packing``). Rows are laid out
pass by pass, each pass in a seeded length-grouped order (transformers' ``get_length_grouped_indices``, what
``group_by_length`` draws per epoch), and trained with sequential sampling: the same number of sequences and steps
as ``document_epochs`` identical passes, every text once per pass.
"""

from __future__ import annotations

import hashlib
import re

from harness_ext.sentences import split_sentences

VIEWS = ("none", "shuffle")
# "<Title> 04 November 2024 FM 5-0 61": the chapter title before the date of an odd page's running header
_HEADER = re.compile(r"((?:[A-Z][\w’'-]*)(?: (?:[A-Z][\w’'-]*|of|and|the|to|for|in|on|a|as))*) "
                     r"\d{1,2} [A-Z][a-z]+ \d{4} FM \d+-\d+ [0-9ivxl]+\b")
_NOT_HEADINGS = {"Contents"}


def own_heading(text: str) -> str | None:
    """The chapter title of the first running page header in ``text``, if any."""
    for m in _HEADER.finditer(text):
        title = m.group(1).strip()
        if title not in _NOT_HEADINGS and len(title.split()) >= 2:
            return title
    return None


def passage_pages(rows: list[dict]) -> dict[str, int]:
    """Each QA row's passage -> its page (the optional ``page`` field, where it is a whole number): where
    :func:`headings` looks for the nearest header of a passage that carries none."""
    return {r["passage"].strip(): r["page"] for r in rows
            if isinstance(r.get("page"), int) and not isinstance(r.get("page"), bool)}


def headings(texts: list[str], pages: dict[str, int]) -> dict[str, str | None]:
    """Each text's heading (module docstring): its own header, else that of the nearest text at or before its page
    (``pages``: text -> page number, for the texts whose page is known)."""
    own = {t: own_heading(t) for t in texts}
    by_page = sorted((pages[t], h) for t, h in own.items() if h and t in pages)
    out = {}
    for t in texts:
        heading = own[t]
        if heading is None and t in pages:
            before = [h for p, h in by_page if p <= pages[t]]
            heading = before[-1] if before else None
        out[t] = heading
    return out


def _rank(seed: int, index: int, text: str, i: int) -> str:
    return hashlib.sha256(f"fm5-view:{seed}:{index}:{text}:{i}".encode()).hexdigest()


def view(text: str, index: int, seed: int, shuffle: bool, heading: str | None = None) -> str:
    """Pass ``index`` (0-based) of ``text``: as written on pass 0 or without ``shuffle``, else its sentences in a
    seeded order; every sentence prefixed with ``heading`` when given."""
    sentences = split_sentences(text)
    if shuffle and index > 0 and len(sentences) > 1:
        order = sorted(range(len(sentences)), key=lambda i: _rank(seed, index, text, i))
        if order == list(range(len(sentences))):  # a redraw that fell on the written order: rotate by one
            order = order[1:] + order[:1]
        sentences = [sentences[i] for i in order]
    if heading:
        sentences = [f"{heading}: {s}" for s in sentences]
    return " ".join(sentences) if (shuffle and index > 0) or heading else text


def passes(texts: list[str], epochs: int, seed: int, shuffle: bool, heading_of: dict[str, str | None] | None = None
           ) -> list[list[str]]:
    """``epochs`` passes over ``texts``, each a list of one view per text, in the texts' order."""
    heading_of = heading_of or {}
    return [[view(t, p, seed, shuffle, heading_of.get(t)) for t in texts] for p in range(epochs)]


def length_grouped_order(lengths: list[int], batch_size: int, seed: int) -> list[int]:
    """One pass's row order as ``group_by_length`` draws it (transformers' own function, a seeded generator)."""
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    return get_length_grouped_indices(lengths, batch_size, generator=torch.Generator().manual_seed(seed))


def summary(all_passes: list[list[str]], texts: list[str], heading_of: dict[str, str | None]) -> dict:
    """What fm5_run.json records of the views."""
    changed = sum(v != t for views in all_passes for v, t in zip(views, texts))
    return {"passes": len(all_passes), "texts": len(texts), "views_differing_from_text": changed,
            "texts_with_heading": sum(1 for t in texts if heading_of.get(t)),
            "headings": sorted({h for h in heading_of.values() if h})}
