"""The multiple-choice knowledge probe: how options are built (harness_ext.probe), its scores
(harness_ext.metrics.mc_scores), stock lm_eval runs of fm5_qa_mc_* recomputed from their logged log-likelihoods,
and the exact token counts behind margin and the QA tasks' perplexity."""

import json
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import fm5_in_process, read_results, read_samples, run_lm_eval, write_jsonl
from harness_ext import data, embeddings, metrics, models, probe, prompts
from harness_ext.errors import UsageError
from harness_ext.results import load_run, per_question

MC_TASKS = {"fm5_qa_mc_open": "open", "fm5_qa_mc_closed": "closed"}


def _rows(answers):
    return [{"id": f"r{i}", "passage": f"p{i}", "question": f"q{i}?", "answer": a} for i, a in enumerate(answers)]


def _unit(vectors):
    v = np.asarray(vectors, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# ------------------------------------------------------------------------------------------- option building


def test_hard_negatives_are_the_most_similar_non_duplicates():
    rows = _rows(["Gold answer.", "gold answer", "Paraphrase.", "Close one.", "Closer one.", "Far one.", "Farther."])
    emb = _unit([[1, 0, 0], [1, 0, 0], [0.99, 0.05, 0], [0.7, 0.7, 0], [0.8, 0.6, 0], [0.1, 1, 0], [0, 0, 1]])
    item = probe.build_items(rows, rows[:1], 2, emb)["r0"]
    # r1: same normalised text; r2: cosine 0.9987 >= 0.95; then by similarity: r4 (0.8), r3 (0.707)
    assert item.distractor_ids == ("r4", "r3")
    assert item.choices[item.gold] == "Gold answer."
    assert [c for i, c in enumerate(item.choices) if i != item.gold] == ["Closer one.", "Close one."]


def test_options_do_not_depend_on_file_order_and_gold_positions_vary(shared_rows):
    rng = np.random.default_rng(0)
    emb = _unit(rng.normal(size=(len(shared_rows), 16)))
    _, test = data.Split().apply(shared_rows)
    items = probe.build_items(shared_rows, test, 3, emb)
    order = list(range(len(shared_rows)))
    random.Random(1).shuffle(order)
    shuffled = probe.build_items([shared_rows[i] for i in order], test, 3, emb[order])
    assert items == shuffled
    assert len({it.gold for it in items.values()}) == 4  # the gold is not always first
    for row in test:
        it = items[row["id"]]
        assert len(set(it.choices)) == 4 and it.choices[it.gold] == prompts.completion_text(row)
        assert row["id"] not in it.distractor_ids


def test_too_few_rows_and_bad_k_are_one_line_errors(tmp_path):
    rows = _rows(["a", "b", "c"])
    emb = _unit(np.eye(3))
    with pytest.raises(data.DataError, match=r"3 row\(s\); .* at least fm5_mc_distractors \+ 1 = 4") as err:
        probe.build_items(rows, rows[:1], 3, emb, where="qa.jsonl")
    assert "\n" not in str(err.value) and str(err.value).startswith("qa.jsonl:")
    for bad in (0, -1, "two", 1.5, None):
        with pytest.raises(UsageError, match="fm5_mc_distractors must be an integer >= 1"):
            probe.build_items(rows, rows[:1], bad, emb)
    dup = _rows(["same", "Same.", "same!", "other"])
    with pytest.raises(data.DataError, match="question 'r0': only 1 other answer"):
        probe.build_items(dup, dup[:1], 2, _unit(np.eye(4)))


def test_load_docs_on_the_shared_file(shared_qa, tmp_path, monkeypatch):
    monkeypatch.setenv("FM5_CACHE", str(tmp_path))  # a cache of its own: other tests fill the session's
    docs = probe.load_mc_docs(shared_qa)
    (cached,) = tmp_path.glob("embeddings/*/*.npz")
    embeddings.forget()
    again = probe.load_mc_docs(shared_qa)  # from the file this time
    assert docs == again and len(docs) == 50
    with np.load(cached) as shard:  # one vector per distinct answer text of the file
        assert shard["vectors"].shape == (len({prompts.completion_text(r) for r in data.load_qa(shared_qa)}), 384)
    _, test = data.Split().apply(data.load_qa(shared_qa))
    assert [d["id"] for d in docs] == [r["id"] for r in test]
    assert all(len(d["choices"]) == 4 and d["choices"][d["gold"]] == d["answer"].strip() for d in docs)
    assert len(probe.load_mc_docs(shared_qa, k=5)[0]["choices"]) == 6


def test_options_come_from_the_questions_own_group(shared_qa):
    """No option is a training answer, and a question's distractors are answers of other questions of its own group
    (task version 2.0); the three earlier seen options that were QA-stage answers are gone."""
    rows = data.load_qa(shared_qa)
    groups = data.Split().groups(rows)
    answers = {prompts.completion_text(r): r["id"] for r in rows}
    group_of = {r["id"]: "seen" for r in groups.seen} | {r["id"]: "unseen" for r in groups.unseen}
    for doc in probe.load_mc_docs(shared_qa):
        others = [c for i, c in enumerate(doc["choices"]) if i != doc["gold"]]
        assert [group_of.get(answers[c]) for c in others] == [doc["group"]] * 3, doc["id"]


def test_missing_embedding_model_is_a_clear_error(shared_qa, tmp_path):
    with pytest.raises(models.ModelError, match="sentence embedding model folder not found"):
        probe.load_mc_docs(shared_qa, embedding=str(tmp_path / "nope"))


# ------------------------------------------------------------------------------------------------ the scores


def test_mc_scores_by_hand():
    # gold 1; option chars 10, 40, 20; lls -5, -8, -6 (acc picks 0; per char 1 wins: -0.2 > -0.3, -0.5)
    s = metrics.mc_scores(1, [-5.0, -8.0, -6.0], [10, 40, 20], [-4.0, -6.0, -5.0], [2, 3, 5], [-1.0, -9.0, -2.0])
    assert s["acc"] == 0.0 and s["acc_norm"] == 1.0
    assert s["acc_pmi"] == 1.0  # -8 - -9 = 1 beats -5 - -1 = -4 and -6 - -2 = -4
    assert s["margin"] == pytest.approx(-6.0 / 3 - (-4.0 / 2 + -5.0 / 5) / 2)
    assert metrics.argmax([1.0, 3.0, 3.0]) == 1  # the first on ties, as numpy.argmax
    with pytest.raises(ValueError):
        metrics.mc_scores(3, [-1.0, -2.0], [1, 1], [-1.0, -2.0], [1, 1], [0.0, 0.0])


# ------------------------------------------------------------------------------------ stock lm_eval, recomputed


_samples, _results = read_samples, read_results


@pytest.mark.slow
@pytest.mark.parametrize("task", MC_TASKS)
def test_logged_loglikelihoods_recompute_every_reported_score(base_run, smollm2, task):
    _, tokenizer, _ = smollm2
    res = _results(base_run)
    samples = _samples(base_run, task)
    assert len(samples) == 4
    recomputed = {m: [] for m in ("acc", "acc_norm", "acc_pmi", "margin")}
    for s in samples:
        doc, k1 = s["doc"], len(s["doc"]["choices"])
        lls = [float(r[0]) for r in s["filtered_resps"]]
        assert len(lls) == 2 * k1 + 1  # options, the prompt's trailing newline, options without the question
        ctx = prompts.render_prompt(tokenizer, prompts.build_messages(doc, MC_TASKS[task]))
        assert s["arguments"]["gen_args_0"]["arg_0"] == ctx and ctx.endswith("\n")
        option, ws, uncond = lls[:k1], lls[k1], lls[k1 + 1 :]
        n_tokens = [len(tokenizer(ctx + c)["input_ids"]) - len(tokenizer(ctx)["input_ids"]) for c in doc["choices"]]
        per_token = [(ll - ws) / n for ll, n in zip(option, n_tokens)]
        g = doc["gold"]
        mine = {
            "acc": float(np.argmax(option) == g),
            "acc_norm": float(np.argmax(np.array(option) / [len(c) for c in doc["choices"]]) == g),
            "acc_pmi": float(np.argmax(np.array(option) - np.array(uncond)) == g),
            "margin": per_token[g] - np.mean([v for i, v in enumerate(per_token) if i != g]),
        }
        for m, v in mine.items():
            assert s[m] == pytest.approx(v, abs=1e-12), (m, s["doc"]["id"])
            recomputed[m].append(v)
    for m, values in recomputed.items():
        assert res["results"][task][f"{m},none"] == pytest.approx(np.mean(values), abs=1e-12)
        assert res["higher_is_better"][task][m] is True
    meta = res["configs"][task]["metadata"]
    assert meta["fm5_mc_distractors"] == 3 and meta["fm5_mc_embedding_model"] == "all-MiniLM-L6-v2"
    assert meta["version"] == 2.0  # options from the question's own group


@pytest.mark.slow
def test_results_reader_reads_the_probe(base_run):
    run = load_run(base_run)
    tr = run.tasks["fm5_qa_mc_closed"]
    assert tr.family == "mc" and tr.metrics == ["acc", "acc_norm", "acc_pmi", "margin"]
    assert np.mean(per_question(tr, "margin")) == pytest.approx(tr.aggregate["margin"], abs=1e-9)
    q = tr.questions[0]
    assert q.prediction == q.choices[q.picked] and 0 <= q.gold < len(q.choices)


@pytest.mark.slow
def test_mc_options_are_the_same_in_every_process(base_run, small_qa, fm5_cache):
    """Another process (fresh embedding computation, another cache) builds the very options lm_eval used."""
    code = ("import json, sys; from harness_ext.probe import load_mc_docs; "
            "print(json.dumps({d['id']: [d['choices'], d['gold']] for d in load_mc_docs(sys.argv[1])}))")
    env_cache = fm5_cache / "other-process"
    import os

    out = subprocess.run([sys.executable, "-c", code, str(small_qa)], capture_output=True, text=True, check=True,
                         env={**os.environ, "FM5_CACHE": str(env_cache)}).stdout
    theirs = json.loads(out.strip().splitlines()[-1])
    for s in _samples(base_run, "fm5_qa_mc_closed"):
        assert theirs[s["doc"]["id"]] == [s["doc"]["choices"], s["doc"]["gold"]]


# --------------------------------------------------------------------------------------- exact token counts


@torch.no_grad()
def _direct_nll(model, tokenizer, prompt, answer):
    """NLL of the tokens lm-eval scores for `answer` after `prompt`: enc(prompt + answer)[len(enc(prompt)):]."""
    whole = models.lm_eval_encode(tokenizer, prompt + answer)
    n_ctx = len(models.lm_eval_encode(tokenizer, prompt))
    logits = model(torch.tensor([whole])).logits[0, n_ctx - 1 : -1]
    target = torch.tensor(whole[n_ctx:])
    return torch.nn.functional.cross_entropy(logits.float(), target, reduction="sum").item(), len(target)


@pytest.mark.slow
def test_perplexity_matches_a_direct_forward_pass_chatml(base_run, smollm2):
    model, tokenizer, _ = smollm2
    for task, variant in (("fm5_qa_open", "open"), ("fm5_qa_closed", "closed")):
        samples = _samples(base_run, task)
        pairs = []
        for s in samples:
            prompt = prompts.render_prompt(tokenizer, prompts.build_messages(s["doc"], variant))
            pairs.append(_direct_nll(model, tokenizer, prompt, s["doc"]["answer"].strip()))
            assert s["perplexity"][1] == pairs[-1][1]  # the same tokens counted
        reported = _results(base_run)["results"][task]["perplexity,none"]
        assert reported == pytest.approx(metrics.corpus_perplexity(pairs), rel=1e-4)


@pytest.fixture(scope="module")
def tiny_llama3(tmp_path_factory, llama3_tokenizer):
    """A small random Llama with the Llama-3-style tokenizer (its template writes <|begin_of_text|> itself)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(llama3_tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=llama3_tokenizer.bos_token_id, eos_token_id=llama3_tokenizer.eos_token_id,
                         pad_token_id=llama3_tokenizer.pad_token_id)
    model = LlamaForCausalLM(config).eval()
    path = tmp_path_factory.mktemp("tiny_llama3")
    model.save_pretrained(path)
    llama3_tokenizer.save_pretrained(path)
    return model, llama3_tokenizer, path


@pytest.mark.slow
def test_perplexity_matches_a_direct_forward_pass_llama3(tmp_path, tiny_llama3, small_qa):
    model, tokenizer, path = tiny_llama3
    folder = run_lm_eval(tmp_path, small_qa,
                         json.dumps({"pretrained": str(path), "chat_template_args": {"date_string": "26 Jul 2024"}}),
                         "--gen_kwargs", "max_gen_toks=4", limit=3, tasks="fm5_qa_closed")
    samples = _samples(folder, "fm5_qa_closed")
    pairs = []
    for s in samples:
        prompt = prompts.render_prompt(tokenizer, prompts.build_messages(s["doc"], "closed"))
        assert prompt.startswith("<|begin_of_text|>") and s["arguments"]["gen_args_0"]["arg_0"] == prompt
        enc = models.lm_eval_encode(tokenizer, prompt)
        assert enc.count(tokenizer.bos_token_id) == 1  # the template's BOS, none added twice
        pairs.append(_direct_nll(model, tokenizer, prompt, s["doc"]["answer"].strip()))
        assert s["perplexity"][1] == pairs[-1][1]
    reported = _results(folder)["results"]["fm5_qa_closed"]["perplexity,none"]
    assert reported == pytest.approx(metrics.corpus_perplexity(pairs), rel=1e-4)


# ------------------------------------------------------------------------------------------- bad input, CLI


def _fm5_eval(tmp_path, data_path, *extra):
    pretrained, gguf = models.packaged_smollm2()
    return fm5_in_process("eval", "--model_args", f"pretrained={pretrained},gguf_file={gguf}", "--tasks",
                          "fm5_qa_mc_closed", "--output_path", str(tmp_path / "out"), "--data", str(data_path),
                          "--limit", "1", *extra)


@pytest.mark.slow
def test_bad_probe_input_exits_2_with_one_line(tmp_path, shared_rows, small_qa, fm5_cache):
    tiny = write_jsonl(tmp_path / "tiny.jsonl", shared_rows[:3])
    cases = [
        (tiny, [], "tiny.jsonl: 3 row(s); the multiple-choice probe needs at least"),
        (small_qa, ["--metadata", '{"fm5_mc_distractors": 0}'], "fm5_mc_distractors must be an integer >= 1"),
        (small_qa, ["--metadata", json.dumps({"fm5_mc_embedding": str(tmp_path / "none")})],
         "sentence embedding model folder not found"),
    ]
    for path, extra, message in cases:
        proc = _fm5_eval(tmp_path, path, *extra)
        assert proc.returncode == 2, proc.stderr[-2000:]
        last = proc.stderr.strip().splitlines()[-1]
        assert message in last and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert not (tmp_path / "out").exists()
