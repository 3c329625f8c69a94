import json
import re
import subprocess
import sys

import pytest

from conftest import FM5, write_jsonl
from fuzz import run_cli
from harness_ext.data import (DataError, Split, derive_id, load_qa, load_split, near_duplicates, resolve_data_path,
                              shares_long_span, span_keys, training_inputs)

ROW = {"passage": "P text.", "question": "What is P?", "answer": "P is text."}


def rows(n):
    return [{"id": f"r{i}", "passage": f"passage {i}", "question": f"question {i}?", "answer": f"answer {i}"}
            for i in range(n)]


def test_loads_jsonl_and_json_alike(tmp_path):
    jsonl = write_jsonl(tmp_path / "a.jsonl", rows(5))
    array = tmp_path / "a.json"
    array.write_text(json.dumps(rows(5), indent=2))
    assert load_qa(jsonl) == load_qa(array) == rows(5)


def test_missing_id_is_derived_stably(tmp_path):
    path = write_jsonl(tmp_path / "noid.jsonl", [ROW, dict(ROW, question="Other?")])
    first, second = load_qa(path)
    assert first["id"] == derive_id(ROW) and first["id"].startswith("q-")
    assert first["id"] != second["id"]
    code = f"from harness_ext.data import load_qa; print(load_qa({str(path)!r})[0]['id'])"
    assert subprocess.check_output([sys.executable, "-c", code], text=True).strip() == first["id"]


def test_extra_fields_and_integer_ids_are_kept(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [dict(ROW, id=7, page=3)])
    assert load_qa(path) == [dict(ROW, id="7", page=3)]


BAD_FILES = {
    "malformed line": (b'{"passage": "p", "question": "q", "answer": "a"}\n{"passage": \n', 2, None, "malformed JSON"),
    "missing field": (b'{"passage": "p", "answer": "a"}\n', 1, "question", "missing"),
    "non-string field": (b'{"passage": "p", "question": "q", "answer": 3}\n', 1, "answer", "must be a string"),
    "empty question": (b'{"passage": "p", "question": "  ", "answer": "a"}\n', 1, "question", "is empty"),
    "empty answer": (b'{"passage": "p", "question": "q", "answer": ""}\n', 1, "answer", "is empty"),
    "duplicate id": (
        b'{"id": "x", "passage": "p", "question": "q", "answer": "a"}\n'
        b'{"id": "x", "passage": "p2", "question": "q2", "answer": "a2"}\n', 2, "id", "duplicate id"),
    "invalid utf-8": (b'{"passage": "p", "question": "q", "answer": "a"}\n{"passage": "\xff"}\n', 2, None, "UTF-8"),
    "empty file": (b"", None, None, "empty"),
    "blank file": (b"\n  \n", None, None, "empty"),
    "not an object": (b'["p", "q", "a"]\n', 1, None, "expected a JSON object"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_bad_file_gives_one_line_naming_file_line_and_field(tmp_path, case):
    content, line, field, words = BAD_FILES[case]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_qa(path)
    message = str(err.value)
    assert "\n" not in message and words in message
    assert message.startswith(f"{path}:{line}:" if line else f"{path}:")
    if field:
        assert f"field '{field}'" in message


@pytest.mark.parametrize("case", ["missing field", "empty file", "invalid utf-8"])
def test_cli_exits_2_without_traceback(tmp_path, case):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(BAD_FILES[case][0])
    code, err = run_cli(["data", "--data", str(path)])
    assert code == 2
    assert "Traceback" not in err and str(path) in err
    assert len(err.strip().splitlines()) == 1


def test_no_data_location_says_how_to_pass_it(monkeypatch):
    monkeypatch.delenv("FM5_DATA", raising=False)
    with pytest.raises(DataError, match="fm5_data.*FM5_DATA"):
        resolve_data_path(None)


def test_split_is_disjoint_complete_and_ten_percent(shared_rows):
    train, test = Split().apply(shared_rows)
    assert len(test) == 50 and len(train) == 450
    assert {r["id"] for r in train}.isdisjoint(r["id"] for r in test)
    assert len(train) + len(test) == len(shared_rows)


def test_split_ignores_file_order_and_depends_on_seed_and_size(shared_rows):
    ids = Split().test_ids(shared_rows)
    assert Split().test_ids(list(reversed(shared_rows))) == ids
    assert Split(seed=7).test_ids(shared_rows) != ids
    assert len(Split(test_size=0.2).test_ids(shared_rows)) == 100
    assert len(Split(test_size=25).test_ids(shared_rows)) == 25


def test_split_is_the_same_in_another_process(shared_qa, shared_rows):
    code = ("import json; from harness_ext.data import load_split; "
            f"print(json.dumps([r['id'] for r in load_split({str(shared_qa)!r})[1]]))")
    other = json.loads(subprocess.check_output([sys.executable, "-c", code], text=True))
    assert other == [r["id"] for r in load_split(shared_qa)[1]]


def test_split_keeps_one_row_for_training():
    assert Split(test_size=0.9).n_test(2) == 1
    with pytest.raises(ValueError):
        Split(test_size=0).n_test(10)


# ------------------------------------------------------------------------------------ seen / unseen halves


def test_seen_and_unseen_partition_the_test_split(shared_rows):
    split = Split()
    groups = split.groups(shared_rows)
    seen, unseen = {r["id"] for r in groups.seen}, {r["id"] for r in groups.unseen}
    assert seen.isdisjoint(unseen) and seen | unseen == split.test_ids(shared_rows)
    assert len(seen) == len(unseen) == 25
    assert split.groups(list(reversed(shared_rows))).seen == list(reversed(groups.seen))  # order-free ids
    assert {r["id"] for r in Split(seen_fraction=0.2).groups(shared_rows).seen} < seen | unseen
    assert len(Split(seen_fraction=0.2).seen_ids(shared_rows)) == 10
    train, evaluation = split.eval_split(groups.train)
    assert len(evaluation) == 45 and {r["id"] for r in train}.isdisjoint(seen | unseen)
    assert split.eval_split(groups.train, 0) == (groups.train, [])


def test_fm5_data_prints_the_four_counts(shared_qa):
    out = subprocess.run([*FM5, "data", "--data", str(shared_qa), "--ids"],
                         capture_output=True, text=True, check=True).stdout
    summary = json.loads(out)
    # 3 training rows share an 8-word span with a held-out question or answer (the lexical near-duplicate rule), one
    # more with a sentence of an unseen passage (the continuation probe's lexical rule)
    assert (summary["train"], summary["eval"], summary["test_seen"], summary["test_unseen"]) == (401, 45, 25, 25)
    assert summary["near_duplicates_dropped_lexical"] == 3 and summary["continuation_leaks_dropped_lexical"] == 1
    assert set(summary["test_seen_ids"]) | set(summary["test_unseen_ids"]) == set(summary["test_ids"])


def test_bad_split_settings_are_one_line(shared_qa):
    for args in (["--test_size", "0"], ["--seen_fraction", "1.5"]):
        code, err = run_cli(["data", "--data", str(shared_qa), *args])
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err


def test_long_span_rule():
    from harness_ext.data import shares_long_span, span_keys

    passage = "The commander and staff use the military decision making process to plan an operation in detail."
    withheld = span_keys(passage)
    assert shares_long_span("Before that: " + passage.upper() + " After.", withheld)  # case and punctuation free
    twelve = " ".join(passage.split()[:12])
    assert not shares_long_span(twelve, withheld)  # 12 words in common are not a long span
    short = span_keys("This page intentionally left blank.")
    assert shares_long_span("Note. This page intentionally left blank. End", short)
    assert not shares_long_span("This page left blank.", short)


def test_document_corpus_keeps_out_everything_unseen(shared_rows, shared_qa, tmp_path):
    from harness_ext.data import SPAN_WORDS, document_corpus, load_documents, span_keys

    chunks = shared_qa.parent / "fm5_chunks.jsonl"
    groups = Split().groups(shared_rows)
    corpus = document_corpus(shared_rows, groups.unseen, load_documents(chunks))
    texts = corpus.texts
    withheld = set().union(*(span_keys(r["passage"]) for r in groups.unseen))
    # an independent check: no 13-word window of any kept text is a window of an unseen passage
    for text in texts:
        words = re.findall(r"\w+", text.lower())
        windows = {tuple(words[i : i + SPAN_WORDS]) for i in range(max(len(words) - SPAN_WORDS + 1, 1))}
        assert not windows & {k for k in withheld if len(k) == SPAN_WORDS}
    assert not {r["passage"].strip() for r in groups.unseen} & set(texts)
    assert {r["passage"].strip() for r in groups.seen} <= set(texts)  # the seen ones are read
    for row in groups.test:  # no held-out question or answer in any text
        assert not any(row["question"].strip() in t or row["answer"].strip() in t for t in texts)
    assert corpus.document_dropped > 0 and corpus.passages_withheld >= 25 and len(set(texts)) == len(texts)
    # an unseen passage shorter than 13 words is withheld too (its span is all its words), here and in --document
    short = {"id": "short", "passage": "Planning is continuous.", "question": "q", "answer": "a"}
    other = {"id": "other", "passage": "Plans change.", "question": "q2", "answer": "a2"}
    assert document_corpus([short, other], [short], ["Planning is continuous.", "Orders flow."]).texts == \
        ["Plans change.", "Orders flow."]
    bad = tmp_path / "docs.jsonl"
    bad.write_text('{"text": "ok"}\n{"txt": "no"}\n')
    with pytest.raises(DataError, match=r"docs.jsonl:2: field 'text': missing"):
        load_documents(bad)


@pytest.mark.slow  # embeds every sentence of the shared file's passages for the continuation rule (~2 min)
def test_near_duplicates_of_held_out_rows_are_dropped_not_blanked(shared_rows):
    """The three near-paraphrases the audit found (each a training row whose passage was blanked for sharing a span
    with an unseen passage, its question and answer kept) are dropped, with the rule that caught them."""
    from harness_ext.embeddings import embed

    inputs = training_inputs(shared_rows, Split(), document_stage=True, embed=embed)
    kept = {r["id"] for r in inputs.train + inputs.eval}
    for row, item in (("fm5-0085", "fm5-0393"), ("fm5-0316", "fm5-0200"), ("fm5-0061", "fm5-0031")):
        assert inputs.near_duplicates[row][0] == item and row not in kept, row
    record = inputs.decontamination()
    assert record["rows_dropped"] == len(inputs.near_duplicates) and ["fm5-0085", "fm5-0393"] == record["pairs"][5][:2]
    # the lexical rule alone (no embedding): an 8-word span shared by two answers
    lexical = near_duplicates([r for r in shared_rows if r["id"] == "fm5-0324"],
                              [r for r in shared_rows if r["id"] == "fm5-0214"])
    assert lexical == {"fm5-0324": ("fm5-0214", "shares a 8-word span with its answer")}
    # no document text holds an 8-word span of an unseen question or answer
    spans = set().union(*(span_keys(r[f], 8) for r in inputs.groups.unseen for f in ("question", "answer")))
    assert not any(shares_long_span(t["text"], spans, 8) for t in inputs.documents)
