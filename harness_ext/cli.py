"""`fm5`: argument parsing and exit codes only (0 ok, 1 regression, 2 unusable input). Heavy imports stay inside the
subcommands so that `fm5 --help` is instant."""

from __future__ import annotations

import argparse
import json
import sys

from harness_ext import ALL_TASKS
from harness_ext.data import DEFAULT_EVAL_SIZE, DEFAULT_SEED, DEFAULT_SEEN_FRACTION, DEFAULT_TEST_SIZE

EXIT_OK, EXIT_REGRESSION, EXIT_BAD_INPUT = 0, 1, 2


def _cmd_tasks_path(args) -> int:
    from harness_ext import tasks_path

    print(tasks_path())
    return EXIT_OK


def _cmd_tasks(args) -> int:
    from harness_ext import register

    if args.action == "install":
        print(register.install())
    elif args.action == "uninstall":
        print(register.uninstall())
    else:
        print(register.status().describe())
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


def _cmd_train(args, extra) -> int:
    from training.sft import main as train_main

    return train_main(args, extra)


def _cmd_eval(args, extra) -> int:
    from harness_ext.sweep import main as sweep_main

    return sweep_main(args, extra)


def _cmd_demo(args) -> int:
    from harness_ext.demo import main as demo_main

    return demo_main(args)


def _cmd_report(args) -> int:
    from reports.build import main as report_main

    return report_main(args)


def _cmd_gate(args) -> int:
    from harness_ext.gate import main as gate_main

    return gate_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fm5", description="FM 5-0 fine-tuning evaluation suite (lm-eval plugin).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("tasks-path", help="print the folder to pass to lm_eval --include_path")
    p.set_defaults(func=_cmd_tasks_path)

    p = sub.add_parser(
        "tasks", help="show or change whether lm-eval finds the fm5 tasks without --include_path",
        description="install: link the fm5_qa task folder into the lm-eval of this environment (a real folder of "
                    "symlinks, so stock `lm_eval --tasks fm5_qa_open,...` works from any directory and upgrades of "
                    "this package need no re-install); uninstall: remove exactly what install made; no argument: "
                    "say where the tasks are registered.")
    p.add_argument("action", nargs="?", choices=("install", "uninstall"))
    p.set_defaults(func=_cmd_tasks)

    p = sub.add_parser("data", help="validate a QA file and show its train/test split")
    p.add_argument("--data", help="QA file (JSONL or JSON); default $FM5_DATA")
    p.add_argument("--test_size", type=float, default=DEFAULT_TEST_SIZE, help="fraction (or count, if >= 1) held out")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--eval_size", type=float, default=DEFAULT_EVAL_SIZE,
                   help="part of the training rows training keeps for eval loss")
    p.add_argument("--seen_fraction", type=float, default=DEFAULT_SEEN_FRACTION,
                   help="part of the test split whose passages document training reads (the rest: unseen)")
    p.add_argument("--ids", action="store_true", help="also list the test ids (all, seen, unseen)")
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser(
        "train",
        help="LoRA fine-tuning with TRL (any config or SFTConfig field can be overridden with --key value)",
    )
    p.add_argument("--config", required=True, help="YAML config (training/configs/*.yaml)")
    p.add_argument("--data", help="QA file; default: the config's data, else $FM5_DATA")
    p.add_argument("--output_dir", help="where the adapter and checkpoints go")
    p.add_argument("--document", help="JSONL with a `text` field added to the document stage's corpus (e.g. "
                                      "../shared/fm5/fm5_chunks.jsonl); texts sharing a 13-word span with an unseen "
                                      "test passage are dropped")
    p.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in output_dir")
    p.set_defaults(func=_cmd_train, takes_extra=True)

    p = sub.add_parser(
        "eval", help="evaluate a base model and adapters in one process (lm-eval output folders)",
        epilog="lm-eval options passed through: --limit N, --batch_size N (default 8), --gen_kwargs K=V,..., "
               "--apply_chat_template, --system_instruction TEXT, --metadata JSON, --device DEV; "
               "--data QA is short for --metadata '{\"fm5_data\": QA}'.")
    p.add_argument("--model_args", required=True, help="pretrained=...[,gguf_file=...] as for lm_eval --model hf")
    p.add_argument("--adapters", nargs="*", default=[], help="PEFT adapter dirs or training output dirs")
    p.add_argument("--tasks", default=",".join(ALL_TASKS),
                   help="comma-separated lm-eval tasks (default: the multiple-choice probe and the QA tasks)")
    p.add_argument("--output_path", required=True)
    p.add_argument("--no-base", dest="base", action="store_false", help="skip the base model")
    p.set_defaults(func=_cmd_eval, takes_extra=True)

    p = sub.add_parser("demo", help="train + evaluate + report on the packaged default models")
    p.add_argument("--data", help="QA file; default $FM5_DATA")
    p.add_argument("--output", default="fm5-demo", help="output folder")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("report", help="HTML report from lm-eval output folders and training runs")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("-o", "--output", required=True, help="HTML file to write")
    p.add_argument("--base", help="which PATH is the baseline (default: the first model)")
    p.add_argument("--markdown", help="also write the summary table as Markdown")
    p.set_defaults(func=_cmd_report)

    from harness_ext.gate import add_arguments as add_gate_arguments

    p = sub.add_parser("gate", help="regression gate with paired bootstrap intervals", description=_gate_help())
    add_gate_arguments(p)
    p.set_defaults(func=_cmd_gate)
    return parser


def _gate_help() -> str:
    from harness_ext.gate import RULE

    return RULE


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
    except KeyboardInterrupt:
        print(f"fm5 {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
