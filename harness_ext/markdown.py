"""Untrusted text (model labels, answers, file paths, error messages) made inert inside GitHub-flavoured Markdown:
the one escaping rule of every Markdown the suite writes (the gate's summary, the report's summary, the
pull-request comment)."""

from __future__ import annotations

import re

# emphasis, code, links and images, table cells, strikethrough; "_" inside a word (snake_case) opens nothing in GFM
_INLINE = re.compile(r"([\\`*\[\]|~]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_LINE_START = re.compile(r"^([#+=>-]|\d+[.)])")  # a heading, list item, quote or setext underline if first
WORD_JOINER = "\u2060"


def text(value: object, limit: int = 2_000) -> str:
    """``value`` as literal inline Markdown on one line: control characters and line breaks become one space; HTML's
    ``& < >`` become entities (no tag, comment or hidden marker can open); the characters that open emphasis, code,
    links, images, table cells and strikethrough are backslash-escaped, and so is a first character that would start
    a heading, list or quote; ``@`` (mentions), ``#`` (issue links) and ``://`` / ``www.`` (autolinks) are broken
    with an invisible word joiner; past ``limit`` characters the text is cut with an ellipsis."""
    s = _CONTROL.sub(" ", str(value)).strip()
    if len(s) > limit:
        s = s[:limit - 1].rstrip() + "…"
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _LINE_START.sub(r"\\\1", _INLINE.sub(r"\\\1", s))
    for opener in ("@", "#", "://", "www."):
        s = s.replace(opener, opener[0] + WORD_JOINER + opener[1:])
    return s
