"""Shared fixtures: the FM 5-0 data beside the repo, small QA files written per test, and one session-scoped
fixture per packaged model. Nothing is loaded at collection time and nothing comes from the network."""

from __future__ import annotations

import json
import random
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
FM5 = (sys.executable, "-m", "fm5")  # the command line every subprocess test runs (`fm5 ...`)
SHARED_QA = Path(os.environ.get("FM5_SHARED", REPO.parent / "shared")) / "fm5" / "qa_pairs.jsonl"


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def shared_qa() -> Path:
    if not SHARED_QA.is_file():
        pytest.fail(f"FM 5-0 data not found at {SHARED_QA}; set FM5_SHARED to the shared/ folder")
    return SHARED_QA


@pytest.fixture(scope="session")
def shared_rows(shared_qa):
    from harness_ext.data import load_qa

    return load_qa(shared_qa)


@pytest.fixture(scope="session")
def small_qa(tmp_path_factory, shared_rows) -> Path:
    """80 real rows with short passages: a test split of 8 questions (4 seen, 4 unseen: the fewest with which every
    unseen question gets 3 distractors from its own group), quick to evaluate with --limit."""
    rows = sorted(shared_rows, key=lambda r: len(r["passage"]))[:80]
    return write_jsonl(tmp_path_factory.mktemp("data") / "small_qa.jsonl", rows)


@pytest.fixture(scope="session", autouse=True)
def fm5_cache(tmp_path_factory) -> Path:
    """The conversion and embedding cache of this test session (never the user's)."""
    path = tmp_path_factory.mktemp("fm5_cache")
    os.environ["FM5_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def smollm2_gguf() -> tuple[str, str]:
    from harness_ext.models import packaged_smollm2

    return packaged_smollm2()


@pytest.fixture(scope="session")
def smollm2(smollm2_gguf, fm5_cache):
    """(model, tokenizer, converted folder) of the packaged SmolLM2-135M, dequantized once per session."""
    from harness_ext.models import converted_base, load_base

    folder = converted_base(*smollm2_gguf)
    model, tokenizer = load_base(str(folder))
    model.eval()
    return model, tokenizer, folder


def read_samples(folder: Path, task: str) -> list[dict]:
    """The samples lm-eval logged for `task` in a model's output folder."""
    (path,) = folder.glob(f"samples_{task}_*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def read_results(folder: Path) -> dict:
    (path,) = folder.glob("results_*.json")
    return json.loads(path.read_text())


def run_lm_eval(out: Path, data: Path, model_args: str, *extra: str, limit: int = 2,
                tasks: str = "fm5_qa_open,fm5_qa_closed", metadata: dict | None = None) -> Path:
    """Stock `lm_eval` as a user runs it; returns the model's output folder."""
    cmd = [
        sys.executable, "-m", "lm_eval", "--include_path", str(REPO / "tasks"),
        "--tasks", tasks, "--apply_chat_template",
        "--model", "hf", "--model_args", model_args, "--device", "cpu", "--batch_size", "4",
        "--metadata", json.dumps(metadata or {"fm5_data": str(data)}), "--limit", str(limit),
        "--output_path", str(out), "--log_samples", *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folders = [p.parent for p in out.rglob("results_*.json")]
    assert len(folders) == 1, folders
    return folders[0]


@pytest.fixture(scope="session")
def base_run(tmp_path_factory, small_qa, smollm2_gguf) -> Path:
    """One real lm_eval run of the packaged SmolLM2 GGUF on both tasks (the first 4 test questions of `small_qa`)."""
    pretrained, gguf = smollm2_gguf
    return run_lm_eval(
        tmp_path_factory.mktemp("base_run"), small_qa, f"pretrained={pretrained},gguf_file={gguf}",
        "--gen_kwargs", "max_gen_toks=32", limit=4,
    )


@pytest.fixture(scope="session")
def mc_run(tmp_path_factory, small_qa, smollm2_gguf, fm5_cache) -> Path:
    """One real lm_eval run of the packaged SmolLM2 GGUF on the multiple-choice probe (4 test questions)."""
    pretrained, gguf = smollm2_gguf
    return run_lm_eval(tmp_path_factory.mktemp("mc_run"), small_qa, f"pretrained={pretrained},gguf_file={gguf}",
                       limit=4, tasks="fm5_qa_mc_open,fm5_qa_mc_closed")


@pytest.fixture(scope="session")
def random_adapter(smollm2, tmp_path_factory):
    """A LoRA adapter over the packaged base with non-zero weights, so it changes the model's outputs."""
    import torch
    from peft import LoraConfig, get_peft_model

    model, _, _ = smollm2
    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    path = tmp_path_factory.mktemp("adapter") / "random-lora"
    peft_model.save_pretrained(path)
    peft_model.unload()  # give the shared session model back unchanged
    return path


# ------------------------------------------------------------------------------- lm-eval-format fixtures


def write_fake_run(folder: Path, questions: dict, model_args: dict | None = None, limit=None, version=1.0,
                   backbone="all-MiniLM-L6-v2:L6", n_original=None, samples=True,
                   stamp="2026-01-01T00-00-00.000000") -> Path:
    """An lm-eval output folder in the exact shape `lm_eval --log_samples` writes for the fm5 tasks.

    `questions` maps task -> list of {id, question, answer, prediction, nll, tokens}; every metric is computed
    from them with harness_ext.metrics (BERTScore with the packaged backbone). Probe tasks (fm5_qa_mc_*) take
    {id, question, answer, choices, gold, lls, tokens, unconditional} instead (see `write_fake_mc_task`)."""
    from harness_ext import metrics
    from harness_ext.models import bertscore_backbone

    folder.mkdir(parents=True, exist_ok=True)
    bb = bertscore_backbone()
    res = {"results": {}, "configs": {}, "versions": {}, "n-samples": {}, "higher_is_better": {},
           "config": {"model": "hf", "model_args": model_args or {"pretrained": "fake-model"}, "limit": limit},
           "lm_eval_version": "0.4.13", "date": 1.0}
    for task, qs in questions.items():
        if task.startswith("fm5_qa_mc_") or task == "fm5_doc_mc":
            write_fake_mc_task(folder, res, task, qs, version, n_original, samples, stamp)
            continue
        preds, golds = [q["prediction"] for q in qs], [q["answer"] for q in qs]
        p, r, f = metrics.bertscore(preds, golds, bb["model"], bb["num_layers"])
        res["results"][task] = {
            "alias": task,
            "perplexity,none": metrics.corpus_perplexity([(q["nll"], q["tokens"]) for q in qs]),
            "exact_match,none": metrics.mean([metrics.exact_match(a, b) for a, b in zip(preds, golds)]),
            "f1,none": metrics.mean([metrics.f1(a, b) for a, b in zip(preds, golds)]),
            "bertscore_precision,none": metrics.mean(p), "bertscore_recall,none": metrics.mean(r),
            "bertscore_f1,none": metrics.mean(f),
        }
        res["configs"][task] = {"task": task, "metadata": {"version": version, "bertscore_backbone": backbone}}
        res["versions"][task] = version
        res["n-samples"][task] = {"original": n_original or len(qs), "effective": len(qs)}
        if samples:
            with open(folder / f"samples_{task}_{stamp}.jsonl", "w") as fh:
                for i, q in enumerate(qs):
                    doc = {"id": q["id"], "passage": "", "question": q["question"], "answer": q["answer"]}
                    fh.write(json.dumps({
                        "doc_id": i, "doc": doc, "target": q["answer"],
                        "filtered_resps": [q["prediction"], [str(-q["nll"]), "False"]],
                        "perplexity": [q["nll"], q["tokens"]],
                        "exact_match": metrics.exact_match(q["prediction"], q["answer"]),
                        "f1": metrics.f1(q["prediction"], q["answer"]),
                        **{k: [q["prediction"], q["answer"]] for k in
                           ("bertscore_precision", "bertscore_recall", "bertscore_f1")},
                    }) + "\n")
    (folder / f"results_{stamp}.json").write_text(json.dumps(res, indent=2))
    return folder


def write_fake_mc_task(folder: Path, res: dict, task: str, qs: list, version, n_original, samples, stamp) -> None:
    """A probe task in lm-eval's shape. The question probe (fm5_qa_mc_*): per question the option log-likelihoods as
    lm-eval logs them (options, then the whitespace request with log-likelihood 0, then the question-removed ones).
    The continuation probe (fm5_doc_mc; items from ``fake_doc_items``): the options' log-likelihoods."""
    from harness_ext import metrics

    family = "doc" if task == "fm5_doc_mc" else "mc"
    per_q, docs, resps = [], [], []
    for q in qs:
        chars = [len(c) for c in q["choices"]]
        if family == "doc":
            per_q.append(metrics.continuation_scores(q["gold"], q["lls"], chars, q["lls"], q["tokens"]))
            docs.append({k: q[k] for k in ("id", "item", "group", "context", "choices", "gold") if k in q})
            resps.append(q["lls"])
        else:
            per_q.append(metrics.mc_scores(q["gold"], q["lls"], chars, q["lls"], q["tokens"], q["unconditional"]))
            docs.append({"id": q["id"], "passage": "", "question": q["question"], "answer": q["answer"],
                         "choices": q["choices"], "gold": q["gold"], **({"group": q["group"]} if "group" in q else {})})
            resps.append([*q["lls"], 0.0, *q["unconditional"]])
    res["results"][task] = {"alias": task, **{f"{m},none": metrics.mean([p[m] for p in per_q])
                                              for m in metrics.family_metrics(family)}}
    res["configs"][task] = {"task": task, "metadata": {"version": version, "fm5_mc_distractors": 3}}
    res["versions"][task] = version
    res["n-samples"][task] = {"original": n_original or len(qs), "effective": len(qs)}
    if samples:
        with open(folder / f"samples_{task}_{stamp}.jsonl", "w") as fh:
            for i, (q, p, doc, r) in enumerate(zip(qs, per_q, docs, resps)):
                fh.write(json.dumps({"doc_id": i, "doc": doc, "target": str(q["gold"]),
                                     "filtered_resps": [[str(x), "False"] for x in r], **p}) + "\n")


def fake_doc_items(n_passages=30, items=3, seed=0, stored=0.0):
    """Continuation-probe items: ``items`` per passage, passages alternately seen and unseen; ``stored`` lifts the
    gold's per-token log-likelihood on the seen passages only."""
    rng = random.Random(seed)
    out = []
    for n in range(n_passages):
        group = "seen" if n % 2 == 0 else "unseen"
        for k in range(items):
            gold = rng.randrange(4)
            tokens = [rng.randint(10, 30) for _ in range(4)]
            per_token = [-3.0 + rng.gauss(0, 0.3) + ((0.3 + (stored if group == "seen" else 0.0)) if i == gold
                                                      else 0.0) for i in range(4)]
            out.append({"id": f"p{n:03d}", "item": f"p{n:03d}#{k + 1}", "group": group, "context": f"text {n}.",
                        "choices": [f" sentence {n}.{k}.{i}" for i in range(4)], "gold": gold,
                        "lls": [p * t for p, t in zip(per_token, tokens)], "tokens": tokens})
    return out


LLAMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if not date_string is defined %}{%- if strftime_now is defined %}"
    "{%- set date_string = strftime_now('%d %b %Y') %}{%- else %}{%- set date_string = '26 Jul 2024' %}{%- endif %}"
    "{%- endif %}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\n' }}{{- 'Today Date: ' + date_string + '\\n\\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


@pytest.fixture(scope="session")
def llama3_tokenizer(shared_rows):
    """A small byte-level BPE tokenizer shaped like Llama 3's: adds <|begin_of_text|> itself and carries a
    Llama-3.2-style chat template (which writes today's date into the system turn unless date_string is given)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=LLAMA3_SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator((r["passage"] + " " + r["answer"] for r in shared_rows[:200]), trainer)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                                       special_tokens=[("<|begin_of_text|>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   pad_token="<|end_of_text|>")
    fast.chat_template = LLAMA3_TEMPLATE
    return fast


def fake_questions(rows, keep=0.6, seed=0, nll_per_token=1.5, wrong=False):
    """Answers that keep about `keep` of the gold words (seeded noise), and NLLs around `nll_per_token`."""
    rng = random.Random(seed)
    out = []
    for row in rows:
        words = row["answer"].split()
        if wrong:
            prediction = "I do not know."
        else:
            prediction = " ".join(w for w in words if rng.random() < keep) or words[0]
        tokens = max(len(words) * 4 // 3, 1)
        out.append({"id": row["id"], "question": row["question"], "answer": row["answer"],
                    "prediction": prediction, "nll": tokens * nll_per_token * rng.uniform(0.9, 1.1),
                    "tokens": tokens})
    return out


def fake_mc_questions(rows, seed=0, skill=1.0, knowledge=0.0, groups=True):
    """Probe questions with 4 options; `skill` scales how far the gold option's log-likelihood stands out, and
    `knowledge` adds to that on the seen questions only (every other question is seen)."""
    rng = random.Random(seed)
    out = []
    for n, row in enumerate(rows):
        group = "seen" if n % 2 == 0 else "unseen"
        gold = rng.randrange(4)
        tokens = [rng.randint(20, 60) for _ in range(4)]
        lift = skill * 0.6 + (knowledge if group == "seen" else 0.0)
        per_token = [-2.0 + rng.gauss(0, 0.3) + (lift if i == gold else 0.0) for i in range(4)]
        lls = [p * t for p, t in zip(per_token, tokens)]
        out.append({"id": row["id"], "question": row["question"], "answer": row["answer"], "gold": gold,
                    "choices": [row["answer"] if i == gold else f"distractor {i} of {row['id']}" for i in range(4)],
                    "lls": lls, "tokens": tokens, "unconditional": [ll * 1.5 for ll in lls],
                    **({"group": group} if groups else {})})
    return out
