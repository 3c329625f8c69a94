"""Fakes of lm-eval's output: output folders in the exact shape `lm_eval --log_samples` writes for the fm5 tasks
(`write_fake_run`), and seeded per-question values to fill them (QA answers, probe options, continuation items).
Like fuzz.py and browser.py, a helper module the tests import; the fixtures stay in conftest.py."""

from __future__ import annotations

import json
import random
from pathlib import Path

def write_fake_run(folder: Path, questions: dict, model_args: dict | None = None, limit=None, version=1.0,
                   backbone="all-MiniLM-L6-v2:L6", n_original=None, samples=True,
                   stamp="2026-01-01T00-00-00.000000") -> Path:
    """An lm-eval output folder in the exact shape `lm_eval --log_samples` writes for the fm5 tasks.

    `questions` maps task -> list of {id, question, answer, prediction, nll, tokens}; every metric is computed
    from them with harness_ext.metrics (BERTScore with the packaged backbone). Probe tasks (fm5_qa_mc_*) take
    {id, question, answer, choices, gold, lls, tokens, unconditional} instead (see `write_fake_mc_task`)."""
    from harness_ext import metrics
    from harness_ext.models import bertscore_backbone
    from harness_ext.results import bertscore_pairs

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
        # as lm-eval's task would score them; through the readers' cache, so reading the run back scores nothing
        scores = bertscore_pairs(list(zip(preds, golds)), bb["model"], bb["num_layers"])
        p, r, f = ([s[i] for s in scores] for i in range(3))
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
