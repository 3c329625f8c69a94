"""`fm5 eval`: a base model and adapters evaluated in one process (or one rank per process under torchrun), through
harness_ext.sweep; lm-eval's own flags pass through."""

from __future__ import annotations

import argparse
import json
import os
import sys

PASS_THROUGH = ("lm-eval options passed through: --limit N, --batch_size N (default 8), --gen_kwargs K=V,..., "
                "--apply_chat_template, --system_instruction TEXT, --metadata JSON, --device DEV; "
                "--data QA is short for --metadata '{\"fm5_data\": QA}'.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from harness_ext import DEFAULT_EVAL_TASKS

    p.epilog = PASS_THROUGH
    p.add_argument("--model_args", required=True, help="pretrained=...[,gguf_file=...] as for lm_eval --model hf")
    p.add_argument("--adapters", nargs="*", default=[], help="PEFT adapter dirs or training output dirs")
    p.add_argument("--tasks", default=",".join(DEFAULT_EVAL_TASKS),
                   help="comma-separated lm-eval tasks (default: the multiple-choice probe and the QA tasks)")
    p.add_argument("--output_path", required=True)
    p.add_argument("--no-base", dest="base", action="store_false", help="skip the base model")
    p.add_argument("--final_only", action="store_true",
                   help="of a training output dir, its final adapter alone (not document/ nor the checkpoints): "
                        "the declared comparison, base against final")
    p.add_argument("--overwrite", action="store_true",
                   help="re-evaluate models whose folder exists (replaced only once the new results are complete); "
                        "without it they are kept and skipped")


def pass_through_parser() -> argparse.ArgumentParser:
    """The lm-eval flags `fm5 eval` passes through (PASS_THROUGH)."""
    p = argparse.ArgumentParser(prog="fm5 eval", add_help=False)
    p.add_argument("--limit", type=float)
    p.add_argument("--batch_size", default="8")
    p.add_argument("--gen_kwargs")
    p.add_argument("--apply_chat_template", action="store_true")
    p.add_argument("--system_instruction")
    p.add_argument("--metadata", default="{}")
    p.add_argument("--device")
    p.add_argument("--data")
    return p


def lm_eval_options(extra: list[str]):
    """The pass-through flags as a harness_ext.sweep.LmEvalOptions; anything else is a one-line error."""
    from harness_ext.errors import UsageError
    from harness_ext.sweep import LmEvalOptions

    opts, unknown = pass_through_parser().parse_known_args(extra)
    if unknown:
        raise UsageError(f"fm5 eval: unsupported option(s) {' '.join(unknown)}")
    try:
        metadata = json.loads(opts.metadata)
    except json.JSONDecodeError as err:
        raise UsageError(f"--metadata: invalid JSON ({err.msg})") from None
    if not isinstance(metadata, dict):
        raise UsageError(f"--metadata: expected a JSON object, got {type(metadata).__name__}")
    if opts.data:
        metadata["fm5_data"] = opts.data
    return LmEvalOptions(opts.limit, opts.batch_size, opts.gen_kwargs, opts.apply_chat_template,
                         opts.system_instruction, metadata, opts.device)


def main(args, extra: list[str]) -> int:
    import logging

    from harness_ext.sweep import base_model_args, evaluate_all

    logging.basicConfig(level=logging.WARNING)
    opts = lm_eval_options(extra)
    model_args = base_model_args(args.model_args)
    tasks = [t for t in args.tasks.split(",") if t]
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        evaluate_all(model_args, args.adapters, tasks, args.output_path, opts, include_base=args.base,
                     overwrite=args.overwrite, final_only=args.final_only)
        return 0
    return _main_rank(model_args, args, tasks, opts)


def _main_rank(model_args: dict, args, tasks: list[str], opts) -> int:
    """One rank of a data-parallel `fm5 eval`. The command's output is one line whatever fails: bad input is
    reported by rank 0 (every rank checks the same input), an error in one rank by that rank; the others, whose
    collectives then fail (or whom the launcher stops with SIGTERM), leave quietly, their unfinished folders removed."""
    import signal

    import torch.distributed as dist

    from harness_ext.errors import Fm5Error
    from harness_ext.sweep import evaluate_all, peer_failed

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the launcher stops us: clean up, then leave
    rank = int(os.environ.get("RANK", "0"))
    try:
        evaluate_all(model_args, args.adapters, tasks, args.output_path, opts, include_base=args.base,
                     overwrite=args.overwrite, final_only=args.final_only)
    except Fm5Error:
        if rank == 0:
            raise
        return 2
    except Exception as err:  # noqa: BLE001 - one line for the whole job, see above
        if peer_failed(err):
            return 1
        first = (str(err).strip().splitlines() or [""])[0][:300]
        print(f"fm5 eval: error: rank {rank}: {type(err).__name__}: {first}", file=sys.stderr, flush=True)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0
