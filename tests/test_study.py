"""harness_ext.data.study and withholding.study_questions: study questions by rule, only from readable texts, under
the decontamination rules; and the pit schedule's row order (training.stages)."""

from __future__ import annotations

import pytest

from harness_ext import data
from harness_ext.data import study
from harness_ext.decontamination import NEAR_SPAN_WORDS, shares_long_span, span_keys, withheld_spans

TEXT = ("2-12. The commander's intent is a clear and concise expression of the purpose of the operation and the "
        "desired military end state. Staffs support the commander throughout the MDMP with running estimates. "
        "It is a short sentence that defines nothing at all here.")


def test_a_definition_gives_a_question_its_reverse_and_a_cloze():
    rows = study.candidates(TEXT, study.key_terms([TEXT]))
    by_kind = {r["kind"]: r for r in rows}
    assert by_kind["definition"] == {
        "kind": "definition", "question": "What is commander's intent?",
        "answer": "The commander's intent is a clear and concise expression of the purpose of the operation and the "
                  "desired military end state."}
    assert by_kind["term"]["question"].startswith("What is the term for a clear and concise expression")
    assert by_kind["term"]["answer"] == "commander's intent"
    clozes = [r for r in rows if r["kind"] == "cloze"]
    assert {r["answer"] for r in clozes} == {"commander's intent", "MDMP"}
    assert all("____" in r["question"] and r["answer"] not in r["question"] for r in clozes)
    assert not any(r["question"].startswith("What is It") for r in rows)  # a pronoun is not a term


def test_the_cap_per_text_and_the_seed():
    one = study.study_rows([TEXT], 2, seed=42)
    assert len(one) == 2 and one == study.study_rows([TEXT], 2, seed=42)
    assert all(r["id"].startswith("study-") and r["source"] == data.text_id(TEXT) and r["passage"] == TEXT
               for r in one)
    assert len(study.study_rows([TEXT], 10, seed=42)) == len(study.candidates(TEXT, study.key_terms([TEXT])))
    assert study.study_rows([TEXT], 0, seed=42) == []


@pytest.fixture(scope="module")
def inputs(shared_rows):
    from harness_ext.embeddings import embed

    return data.training_inputs(shared_rows, data.Split(0.3, 42), max_train_rows=160, document_stage=True,
                                max_document_rows=100, document_questions=3, embed=embed)


def test_study_questions_come_only_from_what_training_reads(inputs):
    """Fails if any generated row derives from an unseen passage, or holds its text, or copies a held-out item."""
    rows = inputs.study.rows
    assert len(rows) > 100  # the shared file's readable passages give many
    readable = {data.text_id(d["text"]) for d in inputs.documents}
    unseen_passages = {data.text_id(r["passage"].strip()) for r in inputs.groups.unseen}
    assert {r["source"] for r in rows} <= readable and not {r["source"] for r in rows} & unseen_passages
    spans = withheld_spans(inputs.groups.unseen)
    items = set().union(*(span_keys(r[f], NEAR_SPAN_WORDS) for r in inputs.groups.unseen for f in ("question", "answer")))
    held_questions = set().union(*(span_keys(r["question"], NEAR_SPAN_WORDS) for r in inputs.groups.test))
    for r in rows:
        for f in ("question", "answer"):
            assert not shares_long_span(r[f], spans) and not shares_long_span(r[f], items, NEAR_SPAN_WORDS), r
        assert span_keys(r["question"], NEAR_SPAN_WORDS).isdisjoint(held_questions), r
    record = inputs.decontamination()["study_questions"]
    assert record["kept"] == len(rows) and record["built"] == len(rows) + len(inputs.study.dropped)
    assert set(record["kinds"]) == set(study.KINDS)


def test_the_rules_drop_rows_built_from_an_unseen_passage(inputs):
    """Given an unseen passage as if it were readable, every study row it yields is dropped by a rule."""
    leaked = [r["passage"].strip() for r in inputs.groups.unseen]
    built = study.study_rows(leaked, 3, seed=42)
    assert built
    got = data.study_questions(leaked, inputs.groups, 3, 42)  # the lexical rules alone
    assert got.rows == [] and set(got.dropped) == {r["id"] for r in built}
    assert {rule for rule, _, _ in got.dropped.values()} == {"unseen passage"}  # their source is unseen text
    # and without the source, the content rules alone catch every row that quotes a sentence of it
    quoting = [dict(r, passage="") for r in built if r["kind"] == "definition"]
    assert quoting
    assert not {r["id"] for r in quoting} - set(_content_drops(quoting, inputs.groups))


def _content_drops(rows, groups):
    from harness_ext.data.withholding import unseen_scored
    from harness_ext.decontamination import continuation_leaks, near_duplicates

    dropped = set(near_duplicates(rows, groups.unseen))
    leaks = continuation_leaks([(r["id"], r["answer"]) for r in rows], unseen_scored(groups.unseen))
    return dropped | set(leaks)


def test_a_seen_answer_may_quote_its_passage_but_a_question_may_not_copy_a_held_out_one(inputs):
    seen = inputs.groups.seen[0]
    groups = inputs.groups
    quoting = {"id": "a", "kind": "definition", "question": "What does the manual say here about it?",
               "answer": seen["answer"], "passage": "", "source": ""}
    copying = dict(quoting, id="b", question=seen["question"], answer="Something else entirely, in other words.")
    from harness_ext.decontamination import near_duplicates

    found = near_duplicates([quoting, copying], groups.test, fields=("question",))
    assert set(found) == {"b"}


def test_document_questions_need_the_document_texts(shared_rows):
    with pytest.raises(ValueError, match="document_questions"):
        data.training_inputs(shared_rows[:40], data.Split(0.3, 42), document_questions=2)


def test_pit_lays_out_the_questions_alone_then_with_their_passages():
    from training.stages import blocks_in_turn, pit_replay

    closed, opened = [f"c{i}" for i in range(5)], [f"o{i}" for i in range(5)]
    rows = blocks_in_turn([closed, opened], 2, seed=3)
    assert sorted(rows[:5]) == sorted(rows[5:10]) == closed and sorted(rows[10:15]) == sorted(rows[15:]) == opened
    assert rows[:5] != rows[5:10] or rows[10:15] != rows[15:]  # each pass drawn anew
    assert rows == blocks_in_turn([closed, opened], 2, seed=3)
    qa = [{"id": f"q{i}"} for i in range(40)]
    replay = pit_replay(qa, 0.1, 3, seed=1)
    assert len(replay) == 12 and all(len({r["id"] for r in replay[4 * p: 4 * p + 4]}) == 4 for p in range(3))
    assert replay[:4] != replay[4:8] and replay == pit_replay(qa, 0.1, 3, seed=1)
    assert pit_replay(qa, 0.0, 3, seed=1) == [] and len(pit_replay(qa[:3], 0.1, 2, seed=1)) == 2
