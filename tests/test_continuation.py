"""The passage-continuation probe (harness_ext.continuation, task fm5_doc_mc): sentences, items and their options,
what training may read next to it, the results reader's per-passage units, the two-line verdict, a stock lm_eval run
recomputed from its logged log-likelihoods, and a run from a document file alone, end to end."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import SHARED_QA, SMALL_TRAINING, fm5_in_process, read_results, read_samples, write_jsonl
from fakes import fake_doc_items, fake_mc_questions, write_fake_run
from harness_ext import continuation as C
from harness_ext import data, metrics
from harness_ext import markdown as md
from harness_ext.results import ResultsError, load_run, per_question

SHARED_CHUNKS = SHARED_QA.parent / "fm5_chunks.jsonl"


def _fake_embed(texts):
    """Deterministic unit vectors: similar texts are not similar here, but the rule does not care."""
    v = np.array([[b / 255 - 0.5 for b in hashlib.sha256(t.encode()).digest()[:16]] for t in texts])
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _sentences(tag: str, n: int) -> str:
    return " ".join(f"The {tag} passage states fact number {i} about orders and planning." for i in range(n))


# ---------------------------------------------------------------------------------------------------- items


def test_sentences_break_at_sentence_ends_only():
    text = ("1-23. The commander drives the operations process. Planning is an art, e.g. the art of war. "
            "Gen. Smith and U.S. forces agreed. See A. B. Jones. \"Quoted words end here.\" (It ends.) Last one here.")
    assert C.split_sentences(text) == [
        "1-23. The commander drives the operations process.",  # a paragraph number joins its sentence
        "Planning is an art, e.g. the art of war.", "Gen. Smith and U.S. forces agreed.", "See A. B. Jones.",
        '"Quoted words end here."', "(It ends.) Last one here."]  # a piece under 3 words joins the next one
    assert not C.usable("Too short here.") and not C.usable("Contents .... 12 .... 14 .... 15 .... 17 .... 19")
    assert C.usable("Commanders use the MDMP when time allows, and they adapt it.")
    assert C.positions([f"Sentence number {i} is long enough here." for i in range(10)]) == [1, 4, 6, 9]


def test_distractors_come_from_other_passages_of_the_same_group():
    units = [C.Unit(f"u{i}", _sentences(f"u{i}", 5), "seen" if i % 2 else "unseen") for i in range(8)]
    docs = C.build_items(units, 3, _fake_embed)
    group = {u.id: u.group for u in units}
    assert docs and {d["group"] for d in docs} == {"seen", "unseen"}
    for d in docs:
        assert len(d["choices"]) == 4 and len(set(d["choices"])) == 4 and 0 <= d["gold"] < 4
        assert all(group[src] == d["group"] and src != d["id"] for src in d["distractor_ids"])
        own = C.split_sentences(next(u.text for u in units if u.id == d["id"]))
        gold = d["choices"][d["gold"]].strip()
        assert gold in own and d["context"] and own[own.index(gold) - 1] in d["context"]
        assert not any(c.strip() in own for i, c in enumerate(d["choices"]) if i != d["gold"])
    assert len({d["gold"] for d in docs}) == 4  # the gold is not always in one place
    assert len({d["item"] for d in docs}) == len(docs) == 8 * 4  # 4 items per 5-sentence passage
    assert {d["item"]: d for d in C.build_items(units[::-1], 3, _fake_embed)} == {d["item"]: d for d in docs}


def test_too_few_sentences_in_a_group_is_a_one_line_error():
    units = [C.Unit("a", _sentences("a", 3), "seen"), C.Unit("b", "One sentence only in this text here.", "seen"),
             C.Unit("c", _sentences("c", 3), "unseen"), C.Unit("d", _sentences("d", 3), "unseen")]
    with pytest.raises(data.DataError, match=r"x.jsonl: passage 'a': only 1 sentence\(s\) of other seen passages"):
        C.build_items(units, 3, _fake_embed, where="x.jsonl")


def test_units_of_a_qa_file_and_of_a_document_file_follow_the_split(shared_rows):
    split = data.Split(0.3, 20261204)
    groups = split.groups(shared_rows)
    units = C.qa_units(shared_rows, split)
    by_id = {r["id"]: r for r in groups.test}
    assert {u.id for u in units} <= set(by_id) and len(units) >= 140
    unseen_passages = {r["passage"].strip() for r in groups.unseen}
    for u in units:
        assert (u.group == "unseen") == (u.text in unseen_passages)
    texts = data.load_documents(SHARED_CHUNKS)
    doc_units = C.document_units(texts, data.Split(0.1, 7))
    inputs = data.document_inputs(texts, data.Split(0.1, 7))
    trained = {r["text"] for r in inputs.documents}
    assert {u.group for u in doc_units} == {"seen", "unseen"}
    spans = data.withheld_spans(inputs.groups.unseen)
    for u in doc_units:  # document-only training reads the probe's seen texts (unless they overlap an unseen one)
        if u.group == "unseen":
            assert u.text not in trained
        else:
            assert (u.text in trained) != data.shares_long_span(u.text, spans)
    assert sum(u.text in trained for u in doc_units) > 0.4 * len(doc_units)


@pytest.mark.parametrize("source", ["qa", "document"])
def test_no_training_input_holds_an_unseen_passage_sentence(shared_rows, source):
    """The span rule covers the probe: no unseen gold sentence of SPAN_WORDS words or more is in any training text
    (the embedded config's split and corpus for the QA file; a document file alone)."""
    if source == "qa":
        split = data.Split(0.3, 20261204)
        inputs = data.training_inputs(shared_rows, split, document_stage=True,
                                      documents=data.load_documents(SHARED_CHUNKS))
        units = C.qa_units(shared_rows, split)
        texts = [r["text"] for r in inputs.documents] + [r[f] for r in inputs.train + inputs.eval
                                                         for f in ("passage", "question", "answer")]
    else:
        split, chunks = data.Split(0.1, 7), data.load_documents(SHARED_CHUNKS)
        units, texts = C.document_units(chunks, split), [r["text"] for r in data.document_inputs(chunks, split).documents]
    training = " ".join(" ".join(t.split()) for t in texts)
    golds = [s for u in units if u.group == "unseen" for s in C.split_sentences(u.text)[1:]
             if C.usable(s) and len(s.split()) >= data.SPAN_WORDS]
    assert len(golds) > 100
    assert not [s for s in golds if s in training]
    seen = [s for u in units if u.group == "seen" for s in C.split_sentences(u.text)[1:]
            if C.usable(s) and len(s.split()) >= data.SPAN_WORDS]
    assert sum(s in training for s in seen) > 0.8 * len(seen)  # the rule is not vacuous: seen text is read


# ------------------------------------------------------------------------------------- results, per passage


def test_results_reader_averages_items_per_passage(tmp_path):
    items = fake_doc_items(n_passages=12, items=3)
    run = load_run(write_fake_run(tmp_path / "m", {"fm5_doc_mc": items}))
    tr = run.tasks["fm5_doc_mc"]
    assert tr.family == "doc" and tr.metrics == ["acc", "acc_norm", "margin"] and tr.has_groups
    assert len(tr.questions) == 12 and {q.items for q in tr.questions} == {3}
    per_item = {}
    for q in items:
        s = metrics.continuation_scores(q["gold"], q["lls"], [len(c) for c in q["choices"]], q["lls"], q["tokens"])
        per_item.setdefault(q["id"], []).append(s["margin"])
    assert per_question(tr, "margin") == pytest.approx([np.mean(per_item[k]) for k in sorted(per_item)])
    assert np.mean([np.mean(v) for v in per_item.values()]) == pytest.approx(tr.aggregate["margin"])
    items[1]["group"] = "unseen"  # one item of a seen passage labelled unseen
    bad = write_fake_run(tmp_path / "bad", {"fm5_doc_mc": items})
    with pytest.raises(ResultsError, match=r"samples_fm5_doc_mc_.*\.jsonl:2: passage 'p000' has items in both"):
        load_run(bad)


def _runs(tmp_path, shared_rows, stored: float, knowledge: float, name: str, question_probe=True):
    tasks = {"fm5_doc_mc": fake_doc_items(n_passages=100, seed=1, stored=stored)}  # 50 + 50 (MIN_PER_GROUP)
    if question_probe:
        tasks["fm5_qa_mc_closed"] = fake_mc_questions(shared_rows[:100], skill=0.5, knowledge=knowledge)
    return write_fake_run(tmp_path / name, tasks, model_args={"pretrained": "fake-model",
                                                             "peft": str(tmp_path / f"{name}-lora")})


def _base(tmp_path, shared_rows, question_probe=True):
    tasks = {"fm5_doc_mc": fake_doc_items(n_passages=100, seed=1)}
    if question_probe:
        tasks["fm5_qa_mc_closed"] = fake_mc_questions(shared_rows[:100], skill=0.3)
    return write_fake_run(tmp_path / "base", tasks)


@pytest.mark.parametrize("stored, knowledge, headline, usable_starts", [
    (1.0, 1.5, "Stored and usable", "Learned the document (95 %)"),
    (1.0, 0.0, "Stored, not shown usable by question", "No evidence that it learned the document"),
    (0.0, 1.5, "Not stored", "Not tested: the question line is tested only when the stored line holds"),
])
def test_two_line_verdict_in_a_fixed_sequence(tmp_path, shared_rows, stored, knowledge, headline, usable_starts):
    from reports import build as B

    base = _base(tmp_path, shared_rows)
    model = _runs(tmp_path, shared_rows, stored, knowledge, "final")
    report = B.build([str(base), str(model)])
    v, (s, u) = report.verdict, report.verdict_lines
    assert v.sentence.startswith(headline + ":")
    assert (s.line, s.comparison, u.line, u.comparison) == ("stored", "final:fm5_doc_mc:margin", "usable",
                                                            "final:fm5_qa_mc_closed:margin")
    assert s.sentence.startswith("Stored the document's text (95 %): fm5_doc_mc margin: seen passages +" if stored
                                 else "No evidence that it stored the document's text")
    assert "50 seen / 50 unseen passages" in s.sentence
    assert u.sentence.startswith(usable_starts)
    declared = {(d.task, d.metric) for d in report.did if d.role == "declared"}
    assert declared == {("fm5_doc_mc", "margin"), ("fm5_qa_mc_closed", "margin")}
    html = B.render_html(report)
    assert html.count('class="verdict') == 3 and "fixed sequence" in html
    assert f"  - Stored (final:fm5_doc_mc:margin): {md.text(s.sentence)}" in B.render_markdown(report)


def test_the_stored_line_alone_without_the_question_probe(tmp_path, shared_rows):
    from reports import build as B

    base = _base(tmp_path, shared_rows, question_probe=False)
    model = _runs(tmp_path, shared_rows, 1.0, 0.0, "final", question_probe=False)
    report = B.build([str(base), str(model)])
    assert report.verdict.line == "stored" and report.verdict_lines == []
    assert report.verdict.sentence.startswith("Stored the document's text (95 %)")
    # without the continuation probe the verdict is the question line alone, as before
    # a stored comparison that names no evaluated model falls back to the question line, which has no numbers here
    report = B.build([str(base), str(model)], stored_text="document:fm5_doc_mc:margin")
    assert report.verdict.line == "usable" and report.verdict.sentence.startswith("No verdict: fm5_qa_mc_closed")


def test_gate_knowledge_rule_on_the_continuation_probe(tmp_path, shared_rows):
    from fm5.cli import main as fm5

    base = _runs(tmp_path, shared_rows, 1.0, 0.0, "stored", question_probe=False)
    lost = _runs(tmp_path, shared_rows, 0.0, 0.0, "lost", question_probe=False)
    config = tmp_path / "gate.yaml"
    config.write_text("tasks: [fm5_doc_mc]\nmetrics: [margin]\nknowledge: {task: fm5_doc_mc, metric: margin, "
                      "tolerance: {absolute: 0.05}}\n")
    out = tmp_path / "g.json"
    code = fm5(["gate", "--baseline", str(base), "--candidate", str(lost), "--config", str(config), "--json", str(out)])
    row = next(r for r in json.loads(out.read_text())["rows"] if "knowledge" in r["metric"])
    assert code == 1 and row["task"] == "fm5_doc_mc" and row["verdict"] == "fail"


# ----------------------------------------------------------------------------------- stock lm_eval, end to end


@pytest.fixture(scope="session")
def chunk_file(tmp_path_factory):
    """60 real FM 5-0 page chunks of 4 to 7 usable sentences: 12 held out at test_size 0.2 (6 seen, 6 unseen)."""
    texts = [t for t in data.load_documents(SHARED_CHUNKS) if len(t) < 900 and
             4 <= sum(C.usable(s) for s in C.split_sentences(t)) <= 7][:60]
    return write_jsonl(tmp_path_factory.mktemp("doc") / "chunks.jsonl", [{"text": t} for t in texts])


@pytest.fixture(scope="session")
def doc_run(tmp_path_factory, chunk_file, smollm2_gguf, fm5_cache):
    from conftest import run_lm_eval

    pretrained, gguf = smollm2_gguf
    return run_lm_eval(tmp_path_factory.mktemp("doc_run"), chunk_file, f"pretrained={pretrained},gguf_file={gguf}",
                       limit=6, tasks="fm5_doc_mc",
                       metadata={"fm5_document": str(chunk_file), "fm5_test_size": 0.2})


@pytest.mark.slow
def test_stock_lm_eval_scores_recompute_from_the_logged_loglikelihoods(doc_run, chunk_file, smollm2):
    _, tokenizer, _ = smollm2
    res, samples = read_results(doc_run), read_samples(doc_run, "fm5_doc_mc")
    assert len(samples) == 6
    mine = {m: [] for m in ("acc", "acc_norm", "margin")}
    for s in samples:
        doc = s["doc"]
        ctx, lls = doc["context"], [float(r[0]) for r in s["filtered_resps"]]
        assert s["arguments"]["gen_args_0"]["arg_0"] == ctx and len(lls) == len(doc["choices"]) == 4
        n_tokens = [len(tokenizer(ctx + c)["input_ids"]) - len(tokenizer(ctx)["input_ids"]) for c in doc["choices"]]
        per_token = [ll / n for ll, n in zip(lls, n_tokens)]
        g = doc["gold"]
        values = {"acc": float(np.argmax(lls) == g),
                  "acc_norm": float(np.argmax(np.array(lls) / [len(c) for c in doc["choices"]]) == g),
                  "margin": per_token[g] - np.mean([v for i, v in enumerate(per_token) if i != g])}
        for m, v in values.items():
            assert s[m] == pytest.approx(v, abs=1e-12), (m, doc["item"])
            mine[m].append(v)
    for m, values in mine.items():
        assert res["results"]["fm5_doc_mc"][f"{m},none"] == pytest.approx(np.mean(values), abs=1e-12)
    meta = res["configs"]["fm5_doc_mc"]["metadata"]
    assert meta["version"] == 1.0 and meta["fm5_doc_rule"] == C.RULE
    assert meta["fm5_data_sha256"] == data.file_sha256(chunk_file)


@pytest.mark.slow
def test_options_are_the_same_in_every_process(doc_run, chunk_file, fm5_cache):
    code = ("import json, sys; from harness_ext.continuation import load_doc_docs; "
            "docs, _ = load_doc_docs(document=sys.argv[1], test_size=0.2); "
            "print(json.dumps({d['item']: [d['choices'], d['gold'], d['group']] for d in docs}))")
    out = subprocess.run([sys.executable, "-c", code, str(chunk_file)], capture_output=True, text=True, check=True,
                         env={**os.environ, "FM5_CACHE": str(fm5_cache / "another-process")}).stdout
    theirs = json.loads(out.strip().splitlines()[-1])
    group = {u.id: u.group for u in C.document_units(data.load_documents(chunk_file), data.Split(0.2))}
    for s in read_samples(doc_run, "fm5_doc_mc"):
        doc = s["doc"]
        assert theirs[doc["item"]] == [doc["choices"], doc["gold"], doc["group"]]
        assert group[doc["id"]] == doc["group"] and {group[i] for i in doc["distractor_ids"]} == {doc["group"]}


@pytest.mark.slow
def test_a_document_file_alone_trains_evaluates_and_reports_the_stored_line(tmp_path, chunk_file, smollm2_gguf):
    """`fm5 train --no-qa --document FILE` (no QA file) -> `fm5 eval --tasks fm5_doc_mc` (the split and the file
    from fm5_run.json) -> `fm5 report`: the verdict's stored line."""
    from training.config import CPU_CONFIG

    pretrained, gguf = smollm2_gguf
    run = tmp_path / "run"
    proc = fm5_in_process("train", "--config", str(CPU_CONFIG), "--document", str(chunk_file), "--no-qa",
                          "--output_dir", str(run), "--test_size", "0.2", "--max_steps", "2",
                          "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
                          "--save_strategy", "no", "--eval_strategy", "no", *SMALL_TRAINING)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((run / "fm5_run.json").read_text())
    assert record["config"]["fm5"]["qa"] is False and record["stored"] == "final:fm5_doc_mc:margin"
    assert record["split"]["train_ids"] == [] and len(record["split"]["test_unseen_ids"]) == 6
    assert record["stages"][-1]["name"] == "document" and record["data"]["path"] == str(chunk_file.resolve())
    evals = tmp_path / "evals"
    proc = fm5_in_process("eval", "--model_args", f"pretrained={pretrained},gguf_file={gguf}", "--adapters", str(run),
                          "--tasks", "fm5_doc_mc", "--output_path", str(evals), "--limit", "8")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "document file from fm5_run.json" in proc.stdout + proc.stderr
    proc = fm5_in_process("report", str(evals), str(run), "-o", str(tmp_path / "r.html"), "--markdown",
                          str(tmp_path / "r.md"))
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "r.md").read_text()
    assert "final:fm5_doc_mc:margin" in md and "passages" in md  # the stored line, over passages


def test_a_comparison_named_after_the_run_is_post_hoc_in_the_headline(tmp_path, shared_rows):
    """`fm5 report --primary` after the run: the headline itself says post hoc, without the verdict's colour."""
    from reports import build as B

    base, model = _base(tmp_path, shared_rows), _runs(tmp_path, shared_rows, 1.0, 1.5, "final")
    report = B.build([str(base), str(model)], primary_text="final:fm5_qa_mc_closed:margin")
    assert report.verdict.sentence.startswith("Post hoc (a comparison named after the run): Stored")
    assert report.verdict.css == "ns" and report.verdict_lines[1].css == "ns"
    assert report.verdict_lines[1].sentence.startswith("Post hoc (named after the run, not a confirmatory test)")


def test_a_split_other_than_the_training_record_gets_no_verdict(tmp_path, shared_rows):
    """The questions evaluated under other group labels than the training run recorded, the passages not held out
    by it: no verdict, one line saying why."""
    from reports import build as B

    rows = shared_rows[:100]  # fake_mc_questions makes every other question seen; the record says the opposite
    base = write_fake_run(tmp_path / "base", {"fm5_qa_mc_closed": fake_mc_questions(rows, skill=0.3)})
    model = write_fake_run(tmp_path / "final", {"fm5_qa_mc_closed": fake_mc_questions(rows, skill=0.5, knowledge=1.5)},
                           model_args={"pretrained": "fake-model", "peft": str(tmp_path / "final-lora")})
    record = tmp_path / "final-lora"
    record.mkdir()
    (record / "fm5_run.json").write_text(json.dumps({"split": {
        "train_ids": [], "test_ids": [r["id"] for r in rows], "test_seen_ids": [r["id"] for r in rows[1::2]],
        "test_unseen_ids": [r["id"] for r in rows[0::2]]}}))
    verdict = B.build([str(base), str(model)]).verdict
    assert verdict.sentence.startswith("No verdict: fm5_qa_mc_closed was evaluated on another split than")
    assert "100 question(s) in another group" in verdict.sentence and verdict.css == "untested"
    # the continuation probe's passages, none of which the record holds out
    base, model = _base(tmp_path / "b", shared_rows), _runs(tmp_path / "b", shared_rows, 1.0, 1.5, "final")
    (tmp_path / "b" / "final-lora").mkdir()
    (tmp_path / "b" / "final-lora" / "fm5_run.json").write_text((record / "fm5_run.json").read_text())
    report = B.build([str(base), str(model)])
    assert report.verdict.sentence.startswith("No verdict on storage")
    assert report.verdict_lines[0].sentence.startswith("No verdict: fm5_doc_mc was evaluated on another split")
    assert "100 evaluated item(s) not held out by it" in report.verdict_lines[0].sentence
