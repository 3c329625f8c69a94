"""One decontamination rule per probe (harness_ext.decontamination), applied by training (data.training_inputs) and
recomputed by the report (reports.build.training_leaks), on the shared file."""

import json

import pytest

from conftest import SMALL_TRAINING, fm5_in_process, write_jsonl
from fakes import fake_mc_questions, write_fake_run
from harness_ext import data, decontamination
from harness_ext.sentences import split_sentences, usable
from reports import build as B

SPLIT = data.Split(0.3, 42)  # the embedded config's split


def test_continuation_rule_spans_and_short_sentences():
    scored = [("p1", "Every day the commander and the staff plan the operation with care."),
              ("p2", "Reframing revisits earlier design hypotheses.")]  # 6 words: all of them, in order
    texts = [("a", "Plans change. The commander and the staff plan the operation with care, always."),
             ("b", "Reframing revisits earlier design hypotheses, and more."),
             ("c", "Reframing revisits earlier hypotheses of design."), ("d", "Nothing in common here at all.")]
    found = decontamination.continuation_leaks(texts, scored)
    assert set(found) == {"a", "b"} and found["a"][0] == "p1" and found["b"][0] == "p2"
    assert "8 consecutive words" in found["a"][1]
    assert decontamination.continuation_leaks(texts, []) == {}


def test_continuation_rule_embedding_catches_a_paraphrase_of_the_shared_file(shared_rows):
    """The closest pair of the shared file's training and unseen sentences read for the threshold: a restatement of
    an unseen sentence (no 8 words in common) is caught, a sentence on the same subject (CCIRs) is not."""
    from harness_ext.embeddings import embed

    scored = [("fm5-0256", "Reframing involves revisiting earlier hypotheses, conclusions, and decisions that "
                           "underpin the current operational approach."),
              ("fm5-0106", "During planning, staffs recommend information requirements for commanders to designate "
                           "as CCIRs.")]
    texts = [("restated", "Reframing is the activity of revisiting earlier design hypotheses, conclusions, and "
                          "decisions behind the present operational approach."),
             ("related", "CCIRs are key pieces of information a commander needs to make timely decisions.")]
    found = decontamination.continuation_leaks(texts, scored, embed)
    assert set(found) == {"restated"} and found["restated"][0] == "fm5-0256" and "cosine 0." in found["restated"][1]


def test_training_inputs_leave_no_lexical_leak_into_the_continuation_probe(shared_rows):
    """Every text training reads (QA rows' questions and answers, the document corpus) against every sentence the
    continuation probe can score in an unseen passage: no 8-word span in common. The QA rows dropped for it are
    recorded with the unseen passage each copies."""
    inputs = data.training_inputs(shared_rows, SPLIT, document_stage=True)
    scored = data.unseen_scored(inputs.groups.unseen)
    texts = [(f"{r['id']} {f}", r[f]) for r in inputs.train + inputs.eval for f in ("question", "answer")]
    seen = {r["passage"].strip() for r in inputs.groups.seen}
    texts += [(str(i), d["text"]) for i, d in enumerate(inputs.documents) if d["text"] not in seen]
    assert decontamination.continuation_leaks(texts, scored) == {}
    record = inputs.decontamination()
    assert record["continuation"]["rows_dropped"] == len(inputs.continuation_leaks) == 4
    assert record["continuation"]["document_texts_dropped"] == len(inputs.corpus.continuation_dropped) > 0
    unseen = inputs.groups.unseen_ids
    assert all(pair[1] in unseen for pair in record["continuation"]["pairs"] + record["continuation"]["document_pairs"])
    assert record["rules"]["continuation"]["sentence_cosine"] == decontamination.CONTINUATION_COSINE
    assert len(record["document_text_ids"]) == len(inputs.documents)
    # the seen passages are what the experiment reads: exempt (counted), every one of them read
    assert seen <= set(inputs.corpus.texts) and inputs.corpus.as_dict()["seen_passages_sharing_with_unseen"] > 0


@pytest.fixture(scope="module")
def clean_inputs(shared_rows):
    """What `fm5 train` reads on the embedded config's split: every rule, the embedding parts included."""
    from harness_ext.embeddings import embed

    return data.training_inputs(shared_rows, SPLIT, document_stage=True, max_document_rows=100, embed=embed)


def _record(folder, inputs, data_path):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fm5_run.json").write_text(json.dumps({
        "data": {"path": str(data_path)}, "corpus": inputs.corpus.as_dict(),
        "decontamination": inputs.decontamination(),
        "split": {"train_ids": sorted(r["id"] for r in inputs.train), **inputs.groups.ids()}}))
    return folder


def _doc_items(passage_id, text, group, gold_sentence=None):
    """Continuation-probe items of one passage, as the task logs them (its usable sentences, 2 items)."""
    sentences = split_sentences(text)
    golds = [s for s in sentences[1:] if usable(s)]
    golds = [gold_sentence] if gold_sentence else golds[:2]
    return [{"id": passage_id, "item": f"{passage_id}#{k}", "group": group, "context": sentences[0],
             "choices": [" " + g, " Other sentence one here now.", " Other sentence two here now.",
                         " Other sentence three here now."], "gold": 0, "lls": [-20.0, -30.0, -30.0, -30.0],
             "tokens": [10, 10, 10, 10]} for k, g in enumerate(golds)]


def _evals(tmp_path, inputs, doc_items, run_dir):
    held = inputs.groups.test
    base = write_fake_run(tmp_path / "evals" / "base", {"fm5_qa_mc_closed": fake_mc_questions(held),
                                                         "fm5_doc_mc": doc_items})
    write_fake_run(tmp_path / "evals" / "run", {"fm5_qa_mc_closed": fake_mc_questions(held, seed=1),
                                                "fm5_doc_mc": doc_items},
                   model_args={"pretrained": "fake-model", "peft": str(run_dir)})
    return base.parent


@pytest.mark.slow
def test_report_keys_items_by_task_and_warns_nothing_for_a_run_trained_with_the_rules(tmp_path, clean_inputs,
                                                                                       shared_qa):
    """The continuation probe's item of a seen passage carries its first held-out question's id; its sentence shares
    8 words with a training answer (seen passages are meant to be read). Keyed by id alone (the old report), that
    sentence was read as the question probe's answer and flagged as a near-duplicate; keyed by task, nothing is."""
    inputs = clean_inputs
    trained = [(f"{r['id']} answer", r["answer"]) for r in inputs.train]
    hits = decontamination.continuation_leaks(trained, data.unseen_scored(inputs.groups.seen))
    key, (seen_id, _) = sorted(hits.items())[0]
    answer = next(r["answer"] for r in inputs.train if r["id"] == key.split()[0])
    passage = next(r["passage"] for r in inputs.groups.seen if r["id"] == seen_id)
    sentence = next(s for s in split_sentences(passage) if decontamination.continuation_leaks(
        [("x", answer)], [("p", s)]))
    items = _doc_items(seen_id, passage, "seen", sentence)
    for r in inputs.groups.unseen[:3]:
        items += _doc_items(r["id"], r["passage"], "unseen")
    run = _record(tmp_path / "run", inputs, shared_qa)
    evals = _evals(tmp_path, inputs, items, run)
    report = B.build([str(evals), str(run)])
    assert not [w for w in report.warnings if "CONTAMINATION" in w], report.warnings
    assert any("no evaluated item (nor a near-duplicate of one" in n for n in report.notes)


@pytest.mark.slow
def test_planted_leaks_are_caught_and_named_by_probe(tmp_path, clean_inputs, shared_rows):
    """A training answer that copies a sentence the continuation probe scores in an unseen passage, and a training
    question that copies a held-out question: each is caught by its own probe's rule and named."""
    inputs = clean_inputs
    unseen, sentence = next((r, s) for r in inputs.groups.unseen for s in split_sentences(r["passage"])[1:]
                            if usable(s))
    held = inputs.groups.test[1]
    copier, asker = inputs.train[0]["id"], inputs.train[1]["id"]
    planted = [dict(r, answer=sentence) if r["id"] == copier else
               dict(r, question=held["question"]) if r["id"] == asker else r for r in shared_rows]
    qa = write_jsonl(tmp_path / "planted.jsonl", planted)
    items = _doc_items(unseen["id"], unseen["passage"], "unseen", sentence)
    run = _record(tmp_path / "run", inputs, qa)
    report = B.build([str(_evals(tmp_path, inputs, items, run)), str(run)])
    (question,) = [w for w in report.warnings if w.startswith("CONTAMINATION, question probes (fm5_qa_*)")]
    (continuation,) = [w for w in report.warnings if w.startswith("CONTAMINATION, continuation probe (fm5_doc_mc)")]
    assert f"{asker} ~ {held['id']}" in question and "decontamination.near_duplicates" in question
    assert f"{copier} answer ~ {unseen['id']}" in continuation and "continuation_leaks" in continuation
    assert copier not in question


@pytest.mark.slow
def test_train_eval_both_probes_report_without_a_contamination_line(tmp_path, shared_qa, smollm2_gguf):
    """`fm5 train` (the embedded config, 2 steps of one sequence) -> `fm5 eval` of both probes (the split from
    fm5_run.json) -> `fm5 report`: the rules training applied leave the report nothing to warn about, and
    fm5_run.json records what each probe's rule dropped."""
    from training.config import CPU_CONFIG

    pretrained, gguf = smollm2_gguf
    run, evals = tmp_path / "run", tmp_path / "evals"
    proc = fm5_in_process("train", "--config", str(CPU_CONFIG), "--data", str(shared_qa), "--output_dir", str(run),
                          "--max_steps", "2", "--per_device_train_batch_size", "1", "--gradient_accumulation_steps",
                          "1", "--save_strategy", "no", "--eval_strategy", "no", *SMALL_TRAINING)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((run / "fm5_run.json").read_text())["decontamination"]
    assert record["rows_dropped"] > 0 and record["continuation"]["rows_dropped"] > 0
    assert record["continuation"]["document_texts_dropped"] > 0 and record["document_text_ids"]
    proc = fm5_in_process("eval", "--model_args", f"pretrained={pretrained},gguf_file={gguf}", "--adapters", str(run),
                          "--final_only", "--data", str(shared_qa), "--tasks", "fm5_qa_mc_closed,fm5_doc_mc",
                          "--output_path", str(evals), "--limit", "12", "--batch_size", "8")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = fm5_in_process("report", str(evals), str(run), "-o", str(tmp_path / "r.html"))
    assert report.returncode == 0 and "CONTAMINATION" not in report.stderr
    assert "CONTAMINATION" not in (tmp_path / "r.html").read_text()
