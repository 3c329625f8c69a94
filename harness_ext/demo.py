"""`fm5 demo`: the whole loop on the packaged default models, sized for 2 CPU cores and 10 minutes.

train a small document + QA LoRA adapter (training/configs/smollm2_cpu.yaml, fewer texts and rows) -> `fm5 eval`
of the base, the document stage's adapter and the final adapter on the probe and the QA tasks (a subset of the
test split) -> HTML report, whose first line per model is the knowledge verdict (seen vs unseen questions).
"""

from __future__ import annotations

import time
from argparse import Namespace
from pathlib import Path

from harness_ext import ALL_TASKS, models
from harness_ext import data as fm5_data

CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "smollm2_cpu.yaml"
# the budget: measured on 2 cores, see README "The demo's budget"
TRAIN_ROWS, EPOCHS, DOCUMENT_TEXTS, EVAL_QUESTIONS, MAX_GEN_TOKS = 64, 2, 48, 16, 64


def _stage(n: int, text: str) -> None:
    print(f"\n== fm5 demo [{n}/3] {text}", flush=True)


def main(args) -> int:
    started = time.time()
    data_path = fm5_data.resolve_data_path(args.data)
    rows = fm5_data.load_qa(data_path)
    groups = fm5_data.Split().groups(rows)
    pretrained, gguf_file = models.packaged_smollm2()
    out = Path(args.output)
    print(f"fm5 demo: {data_path} ({len(rows)} rows: {len(groups['train'])} train, {len(groups['test'])} test = "
          f"{len(groups['seen'])} seen + {len(groups['unseen'])} unseen)")
    print(f"  subsampled to fit 10 minutes on 2 CPU cores: the document stage reads {DOCUMENT_TEXTS} passages (the "
          f"{len(groups['seen'])} seen test passages among them; 3 epochs), the QA stage {TRAIN_ROWS} of the training "
          f"rows (closed-book, {EPOCHS} epochs, no checkpoints); the evaluation covers the first {EVAL_QUESTIONS} of "
          f"{len(groups['test'])} test questions per task, answers capped at {MAX_GEN_TOKS} tokens. Use `fm5 train` / "
          f"`fm5 eval` for full runs.")

    _stage(1, "training a document + QA LoRA adapter on the packaged SmolLM2-135M")
    from training.sft import load_config, train

    script, sft = load_config(str(CONFIG), {"data": str(data_path), "output_dir": str(out / "train"),
                                            "max_train_rows": TRAIN_ROWS, "num_train_epochs": EPOCHS,
                                            "max_document_rows": DOCUMENT_TEXTS, "save_strategy": "no",
                                            "disable_tqdm": True})
    run_dir = train(script, sft, overwrite=True)

    _stage(2, "evaluating the base, the document stage and the final adapter (fm5 eval)")
    from harness_ext.sweep import evaluate_all

    opts = Namespace(limit=EVAL_QUESTIONS, batch_size="8", gen_kwargs=f"max_gen_toks={MAX_GEN_TOKS}",
                     apply_chat_template=True, system_instruction=None, metadata={"fm5_data": str(data_path)},
                     device=None)
    evals = out / "evals"
    evaluate_all({"pretrained": pretrained, "gguf_file": gguf_file}, [str(run_dir)], list(ALL_TASKS), str(evals),
                 opts)

    _stage(3, "writing the report")
    from harness_ext.files import write_atomic
    from reports.build import build, render_html, render_markdown

    report = build([str(evals), str(run_dir)])
    write_atomic(out / "report.html", render_html(report))
    write_atomic(out / "summary.md", render_markdown(report))
    print(render_markdown(report))
    print(f"fm5 demo finished in {time.time() - started:.0f}s")
    for v in report.verdicts:
        print(f"verdict, {v.model}: {v.sentence}")
    print(f"report: {(out / 'report.html').resolve()}")
    return 0
