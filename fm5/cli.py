"""`fm5`: the command layer on top of the library (harness_ext), the recipe (training) and the report (reports):
argument parsing, exit codes (0 ok, 1 regression, 2 unusable input), `fm5 data` and `fm5 tasks-path`; `fm5 demo` is
fm5.demo. Nothing below this package imports it. Heavy imports stay inside the commands so that `fm5 --help` is
instant."""

from __future__ import annotations

import argparse
import json
import sys


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
    from harness_ext.data import Split, load_qa, resolve_data_path, training_inputs
    from harness_ext.errors import UsageError

    path = resolve_data_path(args.data)
    rows = load_qa(path)
    split = Split(args.test_size, args.split_seed, args.seen_fraction)
    try:
        inputs = training_inputs(rows, split, eval_size=args.eval_size)
    except ValueError as err:
        raise UsageError(str(err)) from None
    summary = {"file": str(path), "rows": len(rows), "train": len(inputs.train), "eval": len(inputs.eval),
               **inputs.groups.summary(),
               # the lexical rule only (no model loaded here); `fm5 train --check` adds the embedding rule
               "near_duplicates_dropped_lexical": len(inputs.near_duplicates),
               "continuation_leaks_dropped_lexical": len(inputs.continuation_leaks)}
    if args.ids:
        summary.update(inputs.groups.ids())
    print(json.dumps(summary, indent=1))
    return EXIT_OK


def _add_data_arguments(p: argparse.ArgumentParser) -> None:
    from harness_ext.data import DEFAULT_EVAL_SIZE, DEFAULT_SEED, DEFAULT_SEEN_FRACTION, DEFAULT_TEST_SIZE

    p.add_argument("--data", help="QA file (JSONL or JSON); default $FM5_DATA")
    p.add_argument("--test_size", type=float, default=DEFAULT_TEST_SIZE, help="fraction (or count, if >= 1) held out")
    p.add_argument("--split_seed", "--seed", type=int, default=DEFAULT_SEED,
                   help="seed of the shared split (the training config's split_seed, the tasks' fm5_split_seed)")
    p.add_argument("--eval_size", type=float, default=DEFAULT_EVAL_SIZE,
                   help="part of the training rows training keeps for eval loss")
    p.add_argument("--seen_fraction", type=float, default=DEFAULT_SEEN_FRACTION,
                   help="part of the test split whose passages document training reads (the rest: unseen)")
    p.add_argument("--ids", action="store_true", help="also list the test ids (all, seen, unseen)")


def build_parser() -> argparse.ArgumentParser:
    """Every command module owns its arguments (`add_arguments`) and its `main`; importing them is cheap (their
    heavy imports are inside functions), so `fm5 --help` loads no torch, numpy or lm-eval."""
    from fm5 import demo
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
    demo.add_arguments(p)
    p.set_defaults(func=demo.main)

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
