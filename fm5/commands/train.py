"""`fm5 train`: the LoRA recipe (training.sft) from a YAML config, any config or SFTConfig field overridable with
`--key value`; `--check` validates everything and trains nothing."""

from __future__ import annotations

import json
import os


def add_arguments(p) -> None:
    p.add_argument("--config", required=True, help="YAML config (training/configs/*.yaml)")
    p.add_argument("--data", help="QA file; default: the config's data, else $FM5_DATA")
    p.add_argument("--output_dir", help="where the adapter and checkpoints go")
    p.add_argument("--document", help="JSONL with a `text` field added to the document stage's corpus (e.g. "
                                      "../shared/fm5/fm5_chunks.jsonl); texts sharing a 13-word span with an unseen "
                                      "test passage are dropped")
    p.add_argument("--no-qa", dest="no_qa", action="store_true",
                   help="train on the --document file alone (no QA file, no QA stage): its texts are split into "
                        "train / seen / unseen like QA rows; evaluate with --tasks fm5_doc_mc. No study questions "
                        "either (they are trained in the QA stage) unless --document_questions is given, which is "
                        "then an error")
    p.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in output_dir")
    p.add_argument("--check", action="store_true",
                   help="check the config, the data, the split and the model's config, print the plan, train nothing")


def main(args, extra: list[str] | None = None) -> int:
    """The config, then --key value overrides; `python -m training.sft` is this command too."""
    import logging

    from training import sft

    logging.basicConfig(level=logging.WARNING if args.check else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s")
    overrides = sft.parse_overrides(extra or [])
    given = {"data": args.data, "output_dir": args.output_dir, "document": args.document}
    overrides.update({k: v for k, v in given.items() if v is not None})
    if args.no_qa:
        overrides["qa"] = False
        overrides.setdefault("document_questions", 0)  # the config's study questions need the QA stage
    script, config = sft.load_config(args.config, overrides)
    if args.check:
        print(json.dumps(sft.check(script, config), indent=1))
        return 0
    out = sft.train(script, config, resume=args.resume, overwrite=args.overwrite)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"adapter written to {out}")
    return 0
