"""`fm5 demo`: the whole loop on the packaged default models, sized for 2 CPU cores and 10 minutes.

train a small LoRA adapter (training/configs/smollm2_cpu.yaml, fewer rows) -> `fm5 eval` of the base, every
checkpoint and the final adapter on a subset of the test split -> HTML report.
"""

from __future__ import annotations

import time
from argparse import Namespace
from pathlib import Path

from harness_ext import ALL_TASKS
from harness_ext import data as fm5_data
from harness_ext import models

CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "smollm2_cpu.yaml"
# the budget: measured on 2 cores, see README "The demo's budget"
TRAIN_ROWS, EPOCHS, EVAL_QUESTIONS, MAX_GEN_TOKS = 64, 2, 8, 64


def _stage(n: int, text: str) -> None:
    print(f"\n== fm5 demo [{n}/3] {text}", flush=True)


def main(args) -> int:
    started = time.time()
    data_path = fm5_data.resolve_data_path(args.data)
    rows = fm5_data.load_qa(data_path)
    train_rows, test_rows = fm5_data.Split().apply(rows)
    pretrained, gguf_file = models.packaged_smollm2()
    out = Path(args.output)
    print(f"fm5 demo: {data_path} ({len(rows)} rows: {len(train_rows)} train, {len(test_rows)} test)")
    print(f"  subsampled to fit 10 minutes on 2 CPU cores: training on {TRAIN_ROWS} of the training rows "
          f"(closed-book, {EPOCHS} epochs); evaluating the first {EVAL_QUESTIONS} of {len(test_rows)} test "
          f"questions per task, answers capped at {MAX_GEN_TOKS} tokens. Use `fm5 train` / `fm5 eval` for full runs.")

    _stage(1, "training a LoRA adapter on the packaged SmolLM2-135M")
    from training.sft import load_config, train

    script, sft = load_config(str(CONFIG), {"data": str(data_path), "output_dir": str(out / "train"),
                                            "max_train_rows": TRAIN_ROWS, "num_train_epochs": EPOCHS,
                                            "disable_tqdm": True})
    run_dir = train(script, sft, overwrite=True)

    _stage(2, "evaluating base, checkpoints and final adapter (fm5 eval)")
    from harness_ext.sweep import evaluate_all

    opts = Namespace(limit=EVAL_QUESTIONS, batch_size="8", gen_kwargs=f"max_gen_toks={MAX_GEN_TOKS}",
                     apply_chat_template=True, system_instruction=None, metadata={"fm5_data": str(data_path)},
                     device=None)
    evals = out / "evals"
    evaluate_all({"pretrained": pretrained, "gguf_file": gguf_file}, [str(run_dir)],
                 list(ALL_TASKS), str(evals), opts)

    _stage(3, "writing the report")
    from harness_ext.files import write_atomic
    from reports.build import build, render_html, render_markdown

    report = build([str(evals), str(run_dir)])
    write_atomic(out / "report.html", render_html(report))
    write_atomic(out / "summary.md", render_markdown(report))
    print(render_markdown(report))
    print(f"fm5 demo finished in {time.time() - started:.0f}s")
    print(f"report: {(out / 'report.html').resolve()}")
    return 0
