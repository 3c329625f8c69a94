"""The probes against the QA tasks on one model, in one run: time of the question probe and of the
passage-continuation probe (fm5_doc_mc, over the same held-out questions' passages; loglikelihood only) vs the
generation half of the QA tasks, the model's scores on all five tasks, and the question probe's validity check
(open-book must beat closed-book on acc and margin, paired 95 % interval excluding 0).

    .venv/bin/python bench/probe.py --data ../shared/fm5/qa_pairs.jsonl --output bench-probe [--also_stock]
        [--test_size 0.3 --split_seed 20261204]

Defaults: the packaged SmolLM2-135M GGUF, chat template, batch 8, CPU, the full test split, `fm5 eval`'s model
(harness_ext.lm.PrefixSharingHFLM); `--also_stock` times the probe through lm-eval's own HFLM too (what stock
`lm_eval` runs). Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _timed(fn, bucket: dict, key: str):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            bucket[key] = bucket.get(key, 0.0) + time.perf_counter() - t0
    return wrapper


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--output", default="bench-probe")
    p.add_argument("--limit", type=float, default=None, help="questions per task (default: the whole test split)")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--max_gen_toks", type=int, default=128)
    p.add_argument("--also_stock", action="store_true", help="also time the probe with lm-eval's HFLM")
    p.add_argument("--test_size", type=float, default=None, help="the split (default: the tasks' 10 %%)")
    p.add_argument("--split_seed", type=int, default=None)
    args = p.parse_args()

    import torch
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from harness_ext import MC_TASKS, QA_TASKS, models, prompts, results, tasks_path
    from harness_ext.lm import PrefixSharingHFLM
    from harness_ext.stats import paired_bootstrap

    pretrained, gguf = models.packaged_smollm2()
    model, tokenizer = models.load_base(pretrained, gguf)
    model.eval()
    kwargs = dict(tokenizer=tokenizer, batch_size=args.batch_size, device="cpu",
                  chat_template_args=dict(prompts.CHAT_TEMPLATE_KWARGS))
    lms = {"fm5": PrefixSharingHFLM(pretrained=model, **kwargs), "stock": HFLM(pretrained=model, **kwargs)}
    model_args = {"pretrained": pretrained, "gguf_file": gguf}
    metadata = {**model_args, "fm5_data": str(Path(args.data).resolve()),
                **({"fm5_test_size": args.test_size} if args.test_size else {}),
                **({"fm5_split_seed": args.split_seed} if args.split_seed is not None else {})}
    manager = TaskManager(include_path=str(tasks_path()), metadata=metadata, include_defaults=False)
    print(f"torch threads: {torch.get_num_threads()}, batch {args.batch_size}, limit {args.limit}", flush=True)

    timings: dict[str, float] = {}
    out = Path(args.output)
    plan = [("probe closed", "fm5", ["fm5_qa_mc_closed"]), ("probe open", "fm5", ["fm5_qa_mc_open"]),
            ("continuation", "fm5", ["fm5_doc_mc"]), ("qa", "fm5", list(QA_TASKS))]
    if args.also_stock:
        plan.append(("probe, stock HFLM", "stock", list(MC_TASKS)))
    for label, which, tasks in plan:
        lm = lms[which]
        lm.loglikelihood = _timed(type(lm).loglikelihood.__get__(lm), timings, f"{label} loglikelihood")
        lm.generate_until = _timed(type(lm).generate_until.__get__(lm), timings, f"{label} generate_until")
        t0 = time.perf_counter()
        tracker = EvaluationTracker(output_path=str(out / label.split(",")[0].replace(" ", "_") / which /
                                                    "results.json"))
        res = simple_evaluate(model=lm, model_args=model_args, tasks=tasks, limit=args.limit, log_samples=True,
                              evaluation_tracker=tracker, apply_chat_template=True, task_manager=manager,
                              gen_kwargs=f"max_gen_toks={args.max_gen_toks}", metadata=metadata)
        timings[f"{label} total"] = time.perf_counter() - t0
        samples = res.pop("samples")
        tracker.save_results_aggregated(results=res, samples=samples)
        for task in res["configs"]:
            tracker.save_results_samples(task_name=task, samples=samples[task])

    print("\n== time (s), one process, same model")
    for key in sorted(timings):
        print(f"  {key:28s} {timings[key]:8.1f}")
    probe_s, gen_s = timings["probe closed total"] + timings["probe open total"], timings["qa generate_until"]
    doc_s, closed_s = timings["continuation total"], timings["probe closed total"]
    print(f"  question probe (both tasks, all requests) / QA generation half = {probe_s:.1f} / {gen_s:.1f} = "
          f"{probe_s / gen_s:.2f}")
    print(f"  continuation probe / closed-book question probe = {doc_s:.1f} / {closed_s:.1f} = {doc_s / closed_s:.2f}")
    print(f"  continuation probe / QA generation half = {doc_s:.1f} / {gen_s:.1f} = {doc_s / gen_s:.2f}")

    if args.also_stock:
        print(f"  probe with lm-eval's HFLM (stock lm_eval) = {timings['probe, stock HFLM total']:.1f}")
    runs = {label: results.find_runs(out / label.replace(" ", "_") / "fm5")[0]
            for label in ("probe closed", "probe open", "continuation", "qa")}
    print("\n== scores")
    for run in runs.values():
        for task, tr in sorted(run.tasks.items()):
            print(f"  {task:18s} n={len(tr.questions):3d}  " +
                  "  ".join(f"{m}={tr.aggregate[m]:.4f}" for m in tr.metrics))
    print("\n== validity: open-book minus closed-book on the same questions (paired bootstrap, 95 %)")
    closed, opened = runs["probe closed"].tasks["fm5_qa_mc_closed"], runs["probe open"].tasks["fm5_qa_mc_open"]
    doc = runs["continuation"].tasks["fm5_doc_mc"]
    print(f"  (continuation probe: {sum(q.items for q in doc.questions)} items over {len(doc.questions)} passages)")
    ids = sorted(set(closed.ids) & set(opened.ids))
    for metric in ("acc", "acc_norm", "acc_pmi", "margin"):
        c = dict(zip(closed.ids, results.per_question(closed, metric)))
        o = dict(zip(opened.ids, results.per_question(opened, metric)))
        cmp = paired_bootstrap("mean", [c[i] for i in ids], [o[i] for i in ids])
        verdict = "open > closed" if cmp.low > 0 else ("open < closed" if cmp.high < 0 else "no difference")
        print(f"  {metric:9s} closed {cmp.base:.3f}  open {cmp.candidate:.3f}  delta {cmp.delta:+.3f} "
              f"[{cmp.low:+.3f}, {cmp.high:+.3f}]  {verdict}")


if __name__ == "__main__":
    main()
