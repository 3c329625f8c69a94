import json
import subprocess
import sys

import pytest

from conftest import write_jsonl
from harness_ext.data import DataError, Split, derive_id, load_qa, load_split, resolve_data_path

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
    proc = subprocess.run([sys.executable, "-m", "harness_ext.cli", "data", "--data", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and str(path) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


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
