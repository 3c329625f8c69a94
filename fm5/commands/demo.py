"""`fm5 demo`: the whole loop on the packaged default models, sized for 2 CPU cores and 7 minutes: train a small
document + QA LoRA adapter (training/configs/smollm2_cpu_staged.yaml, the embedded default's recipe before the grid
froze study questions and rank 64 into it, on the notebook's 10 % split, fewer texts and rows) ->
`fm5 eval` of the base, the document stage's adapter and the final adapter on the declared comparison's task, the
closed-book probe, over 30 test questions (15 seen + 15 unseen: below the verdict's claims.MIN_PER_GROUP, so its
line says "Too few questions" with the numbers; the demo shows the pipeline within its budget, not a result) -> HTML
report, whose first line is that comparison's verdict line (seen vs unseen questions). The budget is measured on 2
cores, see README "The demo's budget". Library warnings and log records go to OUTPUT/fm5-demo.log; the stage lines,
progress bars and results stay on screen."""

from __future__ import annotations

import contextlib
import logging

DEMO_TRAIN_ROWS, DEMO_EPOCHS, DEMO_DOCUMENT_TEXTS, DEMO_DOCUMENT_EPOCHS = 64, 1, 48, 3
DEMO_TEST_SIZE, DEMO_QUESTIONS = 0.1, 30  # the first 30 of 50 test questions: 15 seen + 15 unseen on the shared file
LOG_FILE = "fm5-demo.log"
# the loggers of the libraries the demo drives (lm-eval logs as "lm_eval" and "lm-eval"); "py.warnings" carries
# warnings.warn once logging.captureWarnings is on
LIBRARY_LOGGERS = ("lm_eval", "lm-eval", "transformers", "trl", "peft", "datasets", "accelerate", "torch",
                   "huggingface_hub", "bert_score", "py.warnings")


@contextlib.contextmanager
def library_logs_to(path):
    """Within the block, the libraries' log records and Python warnings go to ``path`` (appended) instead of the
    screen; every logger is restored on leaving."""
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:  # lm-eval adds its own screen handler on its first evaluation; let it do so now, then replace it
        from lm_eval.utils import setup_logging

        setup_logging(logging.INFO)
    except ImportError:
        pass
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.propagate))
        logger.handlers, logger.propagate = [handler], False
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        for logger, handlers, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate
        handler.close()


def add_arguments(p) -> None:
    p.add_argument("--data", help="QA file; default $FM5_DATA")
    p.add_argument("--output", default="fm5-demo", help="output folder")


def main(args) -> int:
    import time
    from pathlib import Path

    from harness_ext import data as fm5_data
    from harness_ext import models, sweep
    from harness_ext.claims import Primary
    from harness_ext.files import write_atomic
    from reports.build import build
    from reports.render import render_html, render_markdown
    from training import sft
    from training.config import STAGED_CONFIG

    started = time.time()
    data_path = fm5_data.resolve_data_path(args.data)
    rows = fm5_data.load_qa(data_path)
    script, config = sft.load_config(str(STAGED_CONFIG), {
        "data": str(data_path), "output_dir": str(Path(args.output) / "train"), "test_size": DEMO_TEST_SIZE,
        "max_train_rows": DEMO_TRAIN_ROWS, "num_train_epochs": DEMO_EPOCHS, "max_document_rows": DEMO_DOCUMENT_TEXTS,
        "document_epochs": DEMO_DOCUMENT_EPOCHS, "save_strategy": "no", "disable_tqdm": True})
    groups = fm5_data.Split(script.test_size, script.split_seed, script.seen_fraction).groups(rows)
    primary = Primary.parse(script.primary_comparison)
    pretrained, gguf_file = models.packaged_smollm2()
    out = Path(args.output)
    print(f"fm5 demo: {data_path} ({len(rows)} rows: {len(groups.train)} train, {len(groups.test)} test = "
          f"{len(groups.seen)} seen + {len(groups.unseen)} unseen)")
    print(f"  subsampled to fit 7 minutes on 2 CPU cores: the document stage reads {DEMO_DOCUMENT_TEXTS} passages "
          f"(the {len(groups.seen)} seen test passages among them; {DEMO_DOCUMENT_EPOCHS} epochs), the QA stage "
          f"{DEMO_TRAIN_ROWS} of the training rows (closed-book, {DEMO_EPOCHS} epoch, no checkpoints); the "
          f"evaluation is the declared comparison ({primary}) on the first {DEMO_QUESTIONS} of {len(groups.test)} "
          f"test questions. Use `fm5 train` / `fm5 eval` for full runs and every task.")
    print(f"  library warnings and logs: {out / LOG_FILE}")

    with library_logs_to(out / LOG_FILE):
        print("\n== fm5 demo [1/3] training a document + QA LoRA adapter on the packaged SmolLM2-135M", flush=True)
        run_dir = sft.train(script, config, overwrite=True)

        print("\n== fm5 demo [2/3] evaluating the base, the document stage and the final adapter (fm5 eval)",
              flush=True)
        opts = sweep.LmEvalOptions(limit=DEMO_QUESTIONS, apply_chat_template=True,
                                   metadata={"fm5_data": str(data_path)})
        evals = out / "evals"
        sweep.evaluate_all({"pretrained": pretrained, "gguf_file": gguf_file}, [str(run_dir)], [primary.task],
                           str(evals), opts, overwrite=True)

        print("\n== fm5 demo [3/3] writing the report", flush=True)
        report = build([str(evals), str(run_dir)])
        write_atomic(out / "report.html", render_html(report))
        write_atomic(out / "summary.md", render_markdown(report))
    print(render_markdown(report))
    print(f"fm5 demo finished in {time.time() - started:.0f}s")
    if report.verdict:
        print(f"verdict ({report.verdict.model}, {report.verdict.comparison}): {report.verdict.sentence}")
        for line in report.verdict_lines:
            print(f"  {line.line}: {line.sentence}")
    print(f"report: {(out / 'report.html').resolve()}")
    return 0
