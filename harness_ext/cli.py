"""`fm5`: the command layer on top of the library: argument parsing, exit codes (0 ok, 1 regression, 2 unusable
input) and `fm5 demo`, which chains the train, eval and report commands. Only this module imports `training` and
`reports` from `harness_ext`. Heavy imports stay inside the commands so that `fm5 --help` is instant."""

from __future__ import annotations

import argparse
import json
import sys

from harness_ext import ALL_TASKS

EXIT_OK, EXIT_REGRESSION, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """Argument errors in one line, like every other fm5 error (argparse prints the usage too)."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _cmd_tasks_path(args) -> int:
    from harness_ext import tasks_path

    print(tasks_path())
    return EXIT_OK


def _cmd_data(args) -> int:
    from harness_ext.data import Split, load_qa, resolve_data_path
    from harness_ext.errors import UsageError

    path = resolve_data_path(args.data)
    rows = load_qa(path)
    split = Split(args.test_size, args.seed, args.seen_fraction)
    try:
        groups = split.groups(rows)
        train, evaluation = split.eval_split(groups["train"], args.eval_size)
    except ValueError as err:
        raise UsageError(str(err)) from None
    summary = {"file": str(path), "rows": len(rows), "train": len(train), "eval": len(evaluation),
               "test": len(groups["test"]), "test_seen": len(groups["seen"]), "test_unseen": len(groups["unseen"])}
    if args.ids:
        summary["test_ids"] = [r["id"] for r in groups["test"]]
        summary["test_seen_ids"] = [r["id"] for r in groups["seen"]]
        summary["test_unseen_ids"] = [r["id"] for r in groups["unseen"]]
    print(json.dumps(summary, indent=1))
    return EXIT_OK


def _add_data_arguments(p: argparse.ArgumentParser) -> None:
    from harness_ext.data import DEFAULT_EVAL_SIZE, DEFAULT_SEED, DEFAULT_SEEN_FRACTION, DEFAULT_TEST_SIZE

    p.add_argument("--data", help="QA file (JSONL or JSON); default $FM5_DATA")
    p.add_argument("--test_size", type=float, default=DEFAULT_TEST_SIZE, help="fraction (or count, if >= 1) held out")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--eval_size", type=float, default=DEFAULT_EVAL_SIZE,
                   help="part of the training rows training keeps for eval loss")
    p.add_argument("--seen_fraction", type=float, default=DEFAULT_SEEN_FRACTION,
                   help="part of the test split whose passages document training reads (the rest: unseen)")
    p.add_argument("--ids", action="store_true", help="also list the test ids (all, seen, unseen)")


# `fm5 demo`: the whole loop on the packaged default models, sized for 2 CPU cores and 10 minutes: train a small
# document + QA LoRA adapter (training/configs/smollm2_cpu.yaml, fewer texts and rows) -> `fm5 eval` of the base, the
# document stage's adapter and the final adapter on the probe and the QA tasks (a subset of the test split) -> HTML
# report, whose first line per model is the knowledge verdict (seen vs unseen questions). The budget is measured on
# 2 cores, see README "The demo's budget".
DEMO_TRAIN_ROWS, DEMO_EPOCHS, DEMO_DOCUMENT_TEXTS, DEMO_DOCUMENT_EPOCHS = 64, 2, 48, 3
DEMO_QUESTIONS, DEMO_MAX_GEN_TOKS = 16, 64


def _cmd_demo(args) -> int:
    import time
    from pathlib import Path

    from harness_ext import data as fm5_data
    from harness_ext import models, sweep
    from harness_ext.files import write_atomic
    from reports.build import build, render_html, render_markdown
    from training import sft

    started = time.time()
    data_path = fm5_data.resolve_data_path(args.data)
    rows = fm5_data.load_qa(data_path)
    groups = fm5_data.Split().groups(rows)
    pretrained, gguf_file = models.packaged_smollm2()
    out = Path(args.output)
    print(f"fm5 demo: {data_path} ({len(rows)} rows: {len(groups['train'])} train, {len(groups['test'])} test = "
          f"{len(groups['seen'])} seen + {len(groups['unseen'])} unseen)")
    print(f"  subsampled to fit 10 minutes on 2 CPU cores: the document stage reads {DEMO_DOCUMENT_TEXTS} passages "
          f"(the {len(groups['seen'])} seen test passages among them; {DEMO_DOCUMENT_EPOCHS} epochs), the QA stage {DEMO_TRAIN_ROWS} of the "
          f"training rows (closed-book, {DEMO_EPOCHS} epochs, no checkpoints); the evaluation covers the first "
          f"{DEMO_QUESTIONS} of {len(groups['test'])} test questions per task, answers capped at {DEMO_MAX_GEN_TOKS} "
          f"tokens. Use `fm5 train` / `fm5 eval` for full runs.")

    print("\n== fm5 demo [1/3] training a document + QA LoRA adapter on the packaged SmolLM2-135M", flush=True)
    script, config = sft.load_config(str(sft.CPU_CONFIG), {
        "data": str(data_path), "output_dir": str(out / "train"), "max_train_rows": DEMO_TRAIN_ROWS,
        "num_train_epochs": DEMO_EPOCHS, "max_document_rows": DEMO_DOCUMENT_TEXTS,
        "document_epochs": DEMO_DOCUMENT_EPOCHS, "save_strategy": "no",
        "disable_tqdm": True})
    run_dir = sft.train(script, config, overwrite=True)

    print("\n== fm5 demo [2/3] evaluating the base, the document stage and the final adapter (fm5 eval)", flush=True)
    opts = argparse.Namespace(limit=DEMO_QUESTIONS, batch_size="8", gen_kwargs=f"max_gen_toks={DEMO_MAX_GEN_TOKS}",
                              apply_chat_template=True, system_instruction=None,
                              metadata={"fm5_data": str(data_path)}, device=None)
    evals = out / "evals"
    sweep.evaluate_all({"pretrained": pretrained, "gguf_file": gguf_file}, [str(run_dir)], list(ALL_TASKS),
                       str(evals), opts, overwrite=True)

    print("\n== fm5 demo [3/3] writing the report", flush=True)
    report = build([str(evals), str(run_dir)])
    write_atomic(out / "report.html", render_html(report))
    write_atomic(out / "summary.md", render_markdown(report))
    print(render_markdown(report))
    print(f"fm5 demo finished in {time.time() - started:.0f}s")
    for v in report.verdicts:
        print(f"verdict, {v.model}: {v.sentence}")
    print(f"report: {(out / 'report.html').resolve()}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """Every command module owns its arguments (`add_arguments`) and its `main`; importing them is cheap (their
    heavy imports are inside functions), so `fm5 --help` loads no torch, numpy or lm-eval."""
    from harness_ext import gate, register, sweep
    from reports import build as report
    from training import sft

    parser = _Parser(prog="fm5", description="FM 5-0 fine-tuning evaluation suite (lm-eval plugin).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("tasks-path", help="print the folder to pass to lm_eval --include_path")
    p.set_defaults(func=_cmd_tasks_path)

    p = sub.add_parser("tasks", help="show or change whether lm-eval finds the fm5 tasks without --include_path")
    register.add_arguments(p)
    p.set_defaults(func=register.main)

    p = sub.add_parser("data", help="validate a QA file and show its train/test split")
    _add_data_arguments(p)
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser(
        "train", help="LoRA fine-tuning with TRL (any config or SFTConfig field can be overridden with --key value)")
    sft.add_arguments(p)
    p.set_defaults(func=sft.main, takes_extra=True)

    p = sub.add_parser("eval", help="evaluate a base model and adapters in one process (lm-eval output folders)")
    sweep.add_arguments(p)
    p.set_defaults(func=sweep.main, takes_extra=True)

    p = sub.add_parser("demo", help="train + evaluate + report on the packaged default models")
    p.add_argument("--data", help="QA file; default $FM5_DATA")
    p.add_argument("--output", default="fm5-demo", help="output folder")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("report", help="HTML report from lm-eval output folders and training runs")
    report.add_arguments(p)
    p.set_defaults(func=report.main)

    p = sub.add_parser("gate", help="regression gate with paired bootstrap intervals", description=gate.RULE)
    gate.add_arguments(p)
    p.set_defaults(func=gate.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    from harness_ext.errors import Fm5Error

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        code = args.func(args, extra) if getattr(args, "takes_extra", False) else args.func(args)
    except Fm5Error as err:
        print(f"fm5 {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:  # a path given that cannot be used: missing, a folder, too long, not permitted
        where = f"{err.filename}: " if err.filename else ""
        print(f"fm5 {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"fm5 {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
