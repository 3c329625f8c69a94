"""Benchmark: the notebook's whole recipe on one GPU, then `fm5 eval` of every checkpoint, timed end to end.

    python bench/gpu_recipe.py --data ../shared/fm5/qa_pairs.jsonl [--epochs 10] [--tiny]

No model hub on the GPU machines, so the base is the Llama-3.2-1B shape with random weights (bfloat16) and the
packaged SmolLM2 tokenizer, written to a folder first: the times are the recipe's, the scores mean nothing.
`fm5 train --config training/configs/llama32_1b_gpu.yaml` (document stage + QA stage, 2 x 32 = 64 sequences per
step, 10 epochs over the ~405 training rows; the notebook took 1,036 s for 8.6 epochs), then `fm5 eval` of the base,
the document stage, every checkpoint and the final adapter on the four tasks (batch 32). Prints both wall times.
`--tiny` is a 2-layer model for a CPU smoke test of the script itself.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from train_throughput import LLAMA_1B

REPO = Path(__file__).resolve().parents[1]
TINY = dict(LLAMA_1B, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=49152)


def make_base(folder: Path, tiny: bool) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from harness_ext.models import load_tokenizer, packaged_smollm2

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**(TINY if tiny else LLAMA_1B))).to(torch.bfloat16)
    model.save_pretrained(folder)
    load_tokenizer(*packaged_smollm2()).save_pretrained(folder)


def timed(cmd: list[str]) -> float:
    started = time.time()
    proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    return time.time() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=float, default=10)
    p.add_argument("--tiny", action="store_true", help="a 2-layer model: CPU smoke test of this script")
    p.add_argument("--limit", type=int, help="evaluate only the first N test questions per task")
    args = p.parse_args()
    data = str(Path(args.data).resolve())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_base(tmp / "base", args.tiny)
        fm5 = [sys.executable, "-m", "fm5"]
        overrides = ["--model_name_or_path", str(tmp / "base"), "--gguf_file", "null", "--num_train_epochs",
                     str(args.epochs), "--early_stopping_patience", "null"]
        if args.tiny:
            overrides += ["--dtype", "float32", "--bf16", "false", "--use_cpu", "true", "--max_train_rows", "16",
                          "--max_document_rows", "8", "--gradient_accumulation_steps", "2"]
        train_s = timed([*fm5, "train", "--config", "training/configs/llama32_1b_gpu.yaml", "--data", data,
                         "--output_dir", str(tmp / "run"), *overrides])
        evaluate = [*fm5, "eval", "--model_args", f"pretrained={tmp / 'base'}", "--adapters", str(tmp / "run"),
                    "--output_path", str(tmp / "evals"), "--batch_size", "4" if args.tiny else "32",
                    "--apply_chat_template", "--data", data]
        if args.limit or args.tiny:
            evaluate += ["--limit", str(args.limit or 2), "--gen_kwargs", "max_gen_toks=8"]
        eval_s = timed(evaluate)
        models = sorted(p.name for p in (tmp / "evals").iterdir() if not p.name.startswith("."))
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"device {device}; {'tiny 2-layer' if args.tiny else 'Llama-3.2-1B shape, random weights'}")
    print(f"fm5 train (document + QA stage, {args.epochs:g} epochs): {train_s:.0f} s")
    print(f"fm5 eval of {len(models)} models ({', '.join(models)}): {eval_s:.0f} s")


if __name__ == "__main__":
    main()
