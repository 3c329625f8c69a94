"""harness_ext.markdown: untrusted text stays literal text when a Markdown renderer (CommonMark + GFM tables and
strikethrough, markdown-it-py) turns it into HTML, in a paragraph, at the start of a line and inside a table cell."""

import html
import re

import pytest
from markdown_it import MarkdownIt

from harness_ext.markdown import WORD_JOINER, text

ATTACKS = [
    "<script>alert(1)</script><img src=x onerror=alert(1)>",
    "<!-- fm5-gate --> hidden",
    "**bold** _em_ __strong__ *em* ~~gone~~ `code`",
    "[click](https://evil.example) ![img](https://evil.example/x.png) <https://evil.example>",
    "# heading",
    "- item",
    "1. item",
    "> quote",
    "a | b | c",
    "line one\nline two\r\n\n# heading after a break",
    "&lt;b&gt; is already an entity &amp; stays &copy;",
    "\\*escaped\\* \\",
    "fm5_qa_closed snake_case stays readable",
]


def _render(markdown: str) -> str:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown)


def _visible(rendered: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).replace(WORD_JOINER, "").strip()


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("where", ["paragraph", "line start", "table cell", "list item"])
def test_untrusted_text_renders_as_itself_and_nothing_else(attack, where):
    safe = text(attack)
    assert "\n" not in safe and "\r" not in safe
    doc = {"paragraph": f"Label: {safe} end", "line start": safe, "list item": f"- {safe}",
           "table cell": f"| a | b |\n|---|---|\n| {safe} | x |"}[where]
    rendered = _render(doc)
    tags = set(re.findall(r"<(/?\w+)", rendered))
    allowed = {"p", "/p", "ul", "/ul", "li", "/li"} | ({"table", "/table", "thead", "/thead", "tbody", "/tbody", "tr",
                                                       "/tr", "th", "/th", "td", "/td"} if where == "table cell" else set())
    assert tags <= allowed, (doc, rendered)
    flat = " ".join(attack.split())
    assert flat in " ".join(_visible(rendered).split()), (doc, rendered)


def test_mentions_issue_links_and_autolinks_are_broken():
    safe = text("@octocat see #12 at https://evil.example or www.evil.example")
    for opener in ("@octocat", "#12", "https://", "www.evil"):
        assert opener not in safe
    assert safe.replace(WORD_JOINER, "") == "@octocat see #12 at https://evil.example or www.evil.example"


def test_long_text_is_cut_with_an_ellipsis():
    assert text("x" * 50, limit=10) == "x" * 9 + "…"
