"""training.views: the document stage's views (sentence order re-drawn per pass, headings) and their layout."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from harness_ext.errors import UsageError
from harness_ext.sentences import split_sentences
from training import stages, views
from training.config import CPU_CONFIG, load_config

TEXT = ("Commanders drive the operations process. Planning is the art and science of understanding a situation. "
        "Staffs prepare estimates continuously. The plan states the mission and the intent. "
        "Rehearsals help units synchronize actions.")
HEADER = "Army Design Methodology 04 November 2024 FM 5-0 61 have expertise in their fields. Teams learn quickly."


def test_first_pass_is_the_text_and_later_passes_reorder_its_sentences():
    passes = views.passes([TEXT], 6, seed=42, shuffle=True)
    assert passes == views.passes([TEXT], 6, seed=42, shuffle=True)  # seeded: the same run twice
    assert passes[0] == [TEXT]
    sentences = split_sentences(TEXT)
    later = [p[0] for p in passes[1:]]
    for v in later:
        assert v != TEXT and Counter(split_sentences(v)) == Counter(sentences)  # the same sentences, another order
    assert len(set(later)) >= 4  # the passes differ from one another
    assert views.passes([TEXT], 6, seed=43, shuffle=True) != passes  # and from another seed's
    assert views.passes([TEXT], 3, seed=42, shuffle=False) == [[TEXT]] * 3  # no views: the text each pass


def test_a_one_sentence_text_stays_as_written():
    one = "Planning is the art and science of understanding a situation."
    assert views.passes([one], 3, seed=1, shuffle=True) == [[one]] * 3


def test_headings_prefix_every_sentence():
    (first, second), = zip(*views.passes([TEXT], 2, seed=42, shuffle=True, heading_of={TEXT: "Fundamentals"}))
    for v in (first, second):
        parts = split_sentences(v)
        assert len(parts) == len(split_sentences(TEXT)) and all(p.startswith("Fundamentals: ") for p in parts)


def test_a_heading_is_the_running_header_of_the_text_or_of_the_nearest_page_before():
    assert views.own_heading(HEADER) == "Army Design Methodology"
    assert views.own_heading("Contents ii FM 5-0 04 November 2024 Make And Implement") is None
    assert views.own_heading("Contents 04 November 2024 FM 5-0 iii Glossary") is None  # not a heading
    later, earlier, other = "Text on page 63.", "Text on page 59.", "A --document text without a page."
    heading_of = views.headings([HEADER, later, earlier, other], {HEADER: 61, later: 63, earlier: 59})
    assert heading_of == {HEADER: "Army Design Methodology", later: "Army Design Methodology", earlier: None,
                          other: None}
    # only the texts given are looked at: a header in a text training may not read names nothing
    assert views.headings([later], {later: 63, HEADER: 61}) == {later: None}


def test_headings_of_the_shared_passages(shared_rows):
    from harness_ext.data import Split

    groups = Split(0.3, 42).groups(shared_rows)
    readable = list(dict.fromkeys(r["passage"].strip() for r in groups.train + groups.seen))
    pages = views.passage_pages([*shared_rows, {"passage": "no page", "page": True}, {"passage": "p", "page": "61"}])
    assert len(pages) == len({r["passage"].strip() for r in shared_rows})  # a bool or a string is not a page
    heading_of = views.headings(readable, pages)
    named = [t for t in readable if heading_of[t]]
    assert len(named) > len(readable) / 2  # most passages of the manual's chapters get their chapter's title
    assert set(heading_of.values()) - {None} <= {views.own_heading(t) for t in readable}
    assert {"The Military Decision-Making Process", "Army Design Methodology"} <= set(heading_of.values())


def test_ordered_rows_lay_out_each_pass_whole_and_in_turn(smollm2):
    tokenizer = smollm2[1]
    texts = [f"{TEXT} Text number {i} adds {'words ' * (i % 7)}here." for i in range(21)]
    passes = views.passes(texts, 3, seed=7, shuffle=True)
    for strategy in ("group_by_length", "random", "sequential"):
        sft = type("Cfg", (), {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 2, "seed": 7,
                               "train_sampling_strategy": strategy})
        rows = stages.ordered_rows(passes, tokenizer, sft)
        assert len(rows) == 63
        for p in range(3):  # every text once per pass, the passes in turn
            assert Counter(r["text"] for r in rows[21 * p: 21 * (p + 1)]) == Counter(passes[p])
        assert rows == stages.ordered_rows(passes, tokenizer, sft)
    assert [r["text"] for r in rows] == [t for p in passes for t in p]  # sequential keeps the texts' order


@pytest.mark.parametrize("overrides, words", [
    ({"document_views": "paraphrase"}, "document_views must be none or shuffle"),
    ({"document_views": "shuffle", "document_epochs": 2.5}, "document_epochs must be a whole number"),
    ({"document_headings": True, "packing": True}, "need packing: false"),
    ({"document_headings": "yes"}, "field document_headings: expected bool"),
])
def test_bad_view_settings_are_one_line_errors(overrides, words):
    with pytest.raises(UsageError, match=words):
        load_config(str(CPU_CONFIG), {"output_dir": "unused", **overrides})


def test_views_are_off_by_default_and_declared_in_the_plan(shared_rows):
    from harness_ext.data import Split, training_inputs
    from training import provenance

    script, _ = load_config(str(CPU_CONFIG), {"output_dir": "unused"})
    assert (script.document_views, script.document_headings) == ("none", False)
    assert stages.document_passes(script, None, [{"text": TEXT}], {}) is None
    inputs = training_inputs(shared_rows[:40], Split(0.3, 42))
    on = dataclasses.replace(script, document_views="shuffle", document_headings=True)
    assert provenance.plan(on, inputs)["recipe"] == {"document_schedule": "staged", "document_epochs": 12,
                                                     "document_views": "shuffle", "document_headings": True,
                                                     "document_questions": 3}  # the frozen default's
