"""`fm5`: the command layer on top of the library (harness_ext), the recipe (training) and the report (reports). This
module only assembles the commands (fm5/commands, one module each) and maps errors to exit codes (0 ok,
1 regression, 2 unusable input). Nothing below this package imports it."""

from __future__ import annotations

import argparse
import sys


EXIT_BAD_INPUT = 2  # 0 ok and 1 regression are what the commands return


class _Parser(argparse.ArgumentParser):
    """Argument errors in one line, like every other fm5 error (argparse prints the usage too)."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Every command module (fm5/commands) owns its arguments and its `main`; importing them is cheap (their heavy
    imports are inside functions), so `fm5 --help` loads no torch, numpy or lm-eval."""
    from fm5.commands import data, demo, gate, report, tasks, train
    from fm5.commands import eval as evaluate

    parser = _Parser(prog="fm5", description="FM 5-0 fine-tuning evaluation suite (lm-eval plugin).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # (name, help, add_arguments, main, passes unknown flags on to main), in the order of `fm5 --help`
    for name, help_text, add_arguments, main, takes_extra in (
        ("tasks-path", "print the folder to pass to lm_eval --include_path", tasks.add_path_arguments,
         tasks.main_path, False),
        ("tasks", "show or change whether lm-eval finds the fm5 tasks without --include_path", tasks.add_arguments,
         tasks.main, False),
        ("data", "validate a QA file and show its train/test split", data.add_arguments, data.main, False),
        ("train", "LoRA fine-tuning with TRL (any config or SFTConfig field can be overridden with --key value)",
         train.add_arguments, train.main, True),
        ("eval", "evaluate a base model and adapters in one process (lm-eval output folders)",
         evaluate.add_arguments, evaluate.main, True),
        ("demo", "train + evaluate + report on the packaged default models", demo.add_arguments, demo.main, False),
        ("report", "HTML report from lm-eval output folders and training runs", report.add_arguments, report.main,
         False),
        ("gate", "regression gate with paired bootstrap intervals", gate.add_arguments, gate.main, False),
    ):
        p = sub.add_parser(name, help=help_text)
        add_arguments(p)
        p.set_defaults(func=main, takes_extra=takes_extra)
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
