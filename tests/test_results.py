"""harness_ext.results and harness_ext.samples: lm-eval output folders (as `lm_eval --log_samples` writes them for the
fm5 tasks) read into per-question records, and every unusable folder refused with one line naming the file."""

import json
import math

import pytest

from fakes import fake_doc_items, fake_mc_questions, fake_questions, write_fake_run
from harness_ext import results
from harness_ext.results import ResultsError


@pytest.fixture(scope="module")
def rows(shared_rows):
    return shared_rows[:8]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, rows):
    return write_fake_run(tmp_path_factory.mktemp("results") / "adapter", {
        "fm5_qa_closed": fake_questions(rows, seed=1), "fm5_qa_mc_closed": fake_mc_questions(rows, seed=2),
        "fm5_doc_mc": fake_doc_items(n_passages=4, items=3)},
        model_args={"pretrained": "base-model", "peft": "/runs/a/checkpoint-20"}, limit=8)


def test_a_folder_reads_into_questions_by_id(run_dir, rows):
    run = results.load_run(run_dir)
    assert run.label == "a/checkpoint-20" and run.adapter == "/runs/a/checkpoint-20" and run.limit == 8
    assert set(run.tasks) == {"fm5_qa_closed", "fm5_qa_mc_closed", "fm5_doc_mc"}
    qa, mc, doc = run.tasks["fm5_qa_closed"], run.tasks["fm5_qa_mc_closed"], run.tasks["fm5_doc_mc"]
    assert (qa.family, mc.family, doc.family) == ("qa", "mc", "doc")
    assert qa.ids == sorted(r["id"] for r in rows) and not qa.partial
    fake = {q["id"]: q for q in fake_questions(rows, seed=1)}
    for q in qa.questions:
        assert q.prediction == fake[q.id]["prediction"] and q.tokens == fake[q.id]["tokens"]
        assert q.nll == pytest.approx(fake[q.id]["nll"])
    assert all(q.picked is not None and q.choices and q.group in ("seen", "unseen") for q in mc.questions)
    # the continuation probe: one record per passage, its items averaged
    assert [q.id for q in doc.questions] == ["p000", "p001", "p002", "p003"] and {q.items for q in doc.questions} == {3}


def test_per_question_values_and_the_corpus_value(run_dir):
    qa = results.load_run(run_dir).tasks["fm5_qa_closed"]
    pairs = results.per_question(qa, "perplexity")
    expected = math.exp(sum(n for n, _ in pairs) / sum(t for _, t in pairs))  # exp(mean loss), not mean(exp)
    assert results.corpus_value("perplexity", pairs) == pytest.approx(expected)
    assert results.corpus_value("perplexity", pairs) == pytest.approx(qa.aggregate["perplexity"])
    assert results.corpus_value("f1", results.per_question(qa, "f1")) == pytest.approx(qa.aggregate["f1"])


def test_find_runs_takes_a_folder_or_its_subfolders(run_dir, tmp_path):
    assert [r.path for r in results.find_runs(run_dir)] == [run_dir]
    assert [r.path for r in results.find_runs(run_dir.parent)] == [run_dir]
    with pytest.raises(ResultsError, match="no lm-eval results"):
        results.find_runs(tmp_path)


def test_model_args_and_labels():
    assert results.parse_model_args("pretrained=x,gguf_file=m.gguf") == {"pretrained": "x", "gguf_file": "m.gguf"}
    assert results.parse_model_args('{"pretrained": "x", "peft": "r/a"}') == {"pretrained": "x", "peft": "r/a"}
    assert results.model_label({"pretrained": "/m/SmolLM2", "gguf_file": "/m/S.Q4_1.gguf"}, "f") == "S.Q4_1"
    assert results.model_label({}, "fallback") == "fallback"


@pytest.mark.parametrize("line, words", [
    ("{oops", "invalid JSON"),
    ('{"doc": {"id": "q1"}}', "not an fm5 sample (field 'question' missing)"),
    ('{"doc": {"id": "q1", "question": "q", "answer": "a"}, "perplexity": [1.0], "filtered_resps": ["x"], '
     '"exact_match": 0, "f1": 0}', "field perplexity: expected [answer NLL, answer tokens]"),
])
def test_a_bad_sample_line_is_one_error_naming_file_and_line(run_dir, tmp_path, line, words):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(run_dir, bad)
    samples = next(bad.glob("samples_fm5_qa_closed_*.jsonl"))
    lines = samples.read_text().splitlines()
    samples.write_text("\n".join([lines[0], line, *lines[2:]]) + "\n")
    with pytest.raises(ResultsError) as err:
        results.load_run(bad)
    assert f"{samples}:2" in str(err.value) and words in str(err.value) and "\n" not in str(err.value)


def test_a_results_file_without_fm5_tasks_or_samples(run_dir, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    res_file = next(other.glob("results_*.json"))
    res = json.loads(res_file.read_text())
    for sample in other.glob("samples_fm5_doc_mc_*.jsonl"):
        sample.unlink()
    res_file.write_text(json.dumps(res))
    assert results.load_run(other).missing_samples == ["fm5_doc_mc"]
    res["results"] = {"hellaswag": {"acc,none": 0.5}}
    res_file.write_text(json.dumps(res))
    with pytest.raises(ResultsError, match="no fm5 task in these results"):
        results.load_run(other)
