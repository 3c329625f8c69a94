"""`fm5 data`: validate a QA file and show its train/test split, seen/unseen groups and what decontamination drops
(harness_ext.data)."""

from __future__ import annotations

import json


def add_arguments(p) -> None:
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


def main(args) -> int:
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
    return 0
