"""Stock `lm_eval` on the packaged SmolLM2 GGUF (and a PEFT adapter over it), checked against an independent
computation of every metric."""

import pytest
import torch

from conftest import STOCK_LIMIT, read_results, read_samples
from harness_ext import DEFAULT_EVAL_TASKS, metrics, prompts
from harness_ext.metrics import family_metrics
from harness_ext.models import bertscore_backbone
from harness_ext.results import load_run

pytestmark = pytest.mark.slow  # stock lm_eval runs

METRICS = family_metrics("qa")

TASKS = {"fm5_qa_open": "open", "fm5_qa_closed": "closed"}


_samples, _results = read_samples, read_results


@torch.no_grad()
def _answer_nll(model, tokenizer, prompt, answer):
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a = tokenizer(answer, add_special_tokens=False)["input_ids"]
    logits = model(torch.tensor([p + a])).logits[0, len(p) - 1 : -1]
    return torch.nn.functional.cross_entropy(logits.float(), torch.tensor(a), reduction="sum").item(), len(a)


def test_all_six_metrics_for_both_tasks(base_run):
    res = _results(base_run)
    for task in TASKS:
        assert {f"{m},none" for m in METRICS} <= set(res["results"][task])
        assert res["configs"][task]["metadata"]["bertscore_backbone"] == "all-MiniLM-L6-v2:L6"


@pytest.mark.parametrize("task", TASKS)
def test_metrics_match_an_independent_computation(base_run, smollm2, task):
    model, tokenizer, _ = smollm2
    reported = _results(base_run)["results"][task]
    samples = _samples(base_run, task)
    preds = [s["filtered_resps"][0].strip() for s in samples]
    golds = [s["doc"]["answer"].strip() for s in samples]

    # the prompt lm-eval sent is the one our builder renders (chat template, pinned date)
    pairs = []
    for s in samples:
        prompt = prompts.render_prompt(tokenizer, prompts.build_messages(s["doc"], TASKS[task]))
        assert s["arguments"]["gen_args_0"]["arg_0"] == prompt
        pairs.append(_answer_nll(model, tokenizer, prompt, s["doc"]["answer"].strip()))
    direct_ppl = metrics.corpus_perplexity(pairs)  # the answer encoded alone: close (exact: tests/test_probe.py)
    assert reported["perplexity,none"] == pytest.approx(direct_ppl, rel=0.02)

    assert reported["exact_match,none"] == pytest.approx(sum(map(metrics.exact_match, preds, golds)) / len(preds),
                                                         abs=1e-4)
    assert reported["f1,none"] == pytest.approx(sum(map(metrics.f1, preds, golds)) / len(preds), abs=1e-4)

    from bert_score import BERTScorer

    backbone = bertscore_backbone()
    p, r, f = BERTScorer(model_type=backbone["model"], num_layers=backbone["num_layers"]).score(preds, golds)
    for name, values in (("precision", p), ("recall", r), ("f1", f)):
        assert reported[f"bertscore_{name},none"] == pytest.approx(values.mean().item(), abs=1e-4)


def test_results_reader_recomputes_the_aggregates(base_run):
    run = load_run(base_run)
    assert run.limit == STOCK_LIMIT and set(run.tasks) == set(DEFAULT_EVAL_TASKS)
    from harness_ext.results import corpus_value, per_question

    for tr in run.tasks.values():  # the QA tasks and the probe, each by its own metrics
        assert len(tr.questions) == STOCK_LIMIT and tr.n_original == 8
        for metric in family_metrics(tr.family):
            assert corpus_value(metric, per_question(tr, metric)) == pytest.approx(tr.aggregate[metric], abs=1e-4)


def test_lm_eval_on_a_peft_adapter_over_the_gguf_base(adapter_run, random_adapter, base_run):
    res = _results(adapter_run)
    base = _results(base_run)
    for task in TASKS:
        assert {f"{m},none" for m in METRICS} <= set(res["results"][task])
    assert load_run(adapter_run).label == "random-lora" and res["config"]["model_args"]["peft"] == str(random_adapter)
    first = [_samples(run, "fm5_qa_closed")[0]["perplexity"] for run in (adapter_run, base_run)]
    assert first[0] != first[1]  # the adapter changed the scores
    assert base["config"]["model_args"].get("peft") is None
