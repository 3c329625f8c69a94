"""Benchmark: `fm5 eval` (one process, base + 3 adapters) vs 4 separate stock `lm_eval` runs.

    python bench/eval_sweep.py --data ../shared/fm5/qa_pairs.jsonl [--limit 3] [--max_gen_toks 32]

The same work on both sides: the same --tasks (default: all four fm5 tasks), --limit, batch size and generation
settings; the adapters are random LoRA adapters over the packaged SmolLM2-135M GGUF. The conversion cache is warmed
first (as after any earlier fm5 run) and its one-off cost is printed separately. Prints each model's evaluation time
on each side (lm-eval's own `total_evaluation_time_seconds`, so the rest of the wall time is start-up and loading),
both wall times and, last, `ratio X.XX`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness_ext import DEFAULT_EVAL_TASKS

REPO = Path(__file__).resolve().parents[1]


def make_adapters(folder: Path, n: int) -> list[Path]:
    import torch
    from peft import LoraConfig, get_peft_model

    from harness_ext.models import converted_base, load_base, packaged_smollm2

    model, _ = load_base(str(converted_base(*packaged_smollm2())))
    paths = []
    for i in range(n):
        torch.manual_seed(i)
        peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                                      init_lora_weights=False))
        path = folder / f"adapter-{i}"
        peft_model.save_pretrained(path)
        model = peft_model.unload()
        paths.append(path)
    return paths


def evaluation_seconds(folder: Path) -> dict[str, float]:
    """Per model folder under ``folder``: lm-eval's recorded evaluation time."""
    out = {}
    for results in sorted(folder.rglob("results_*.json")):
        out[results.parent.name] = float(json.loads(results.read_text()).get("total_evaluation_time_seconds", "nan"))
    return out


def timed(cmd: list[str], env: dict) -> float:
    started = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return time.time() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--limit", type=int, default=3)
    p.add_argument("--max_gen_toks", type=int, default=32)
    p.add_argument("--batch_size", default="8")
    p.add_argument("--tasks", default=",".join(DEFAULT_EVAL_TASKS), help="comma-separated, given to both sides")
    args = p.parse_args()

    from harness_ext.models import converted_base, packaged_smollm2

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    pretrained, gguf = packaged_smollm2()
    t0 = time.time()
    converted_base(pretrained, gguf)
    print(f"conversion cache warm-up (one-off per GGUF file): {time.time() - t0:.1f}s")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        adapters = make_adapters(tmp, 3)
        common = ["--limit", str(args.limit), "--batch_size", args.batch_size, "--apply_chat_template",
                  "--gen_kwargs", f"max_gen_toks={args.max_gen_toks}"]
        metadata = json.dumps({"fm5_data": str(Path(args.data).resolve())})
        model_args = f"pretrained={pretrained},gguf_file={gguf}"

        print(f"tasks on both sides: {args.tasks}")
        sweep = timed([sys.executable, "-m", "fm5", "eval", "--model_args", model_args, "--adapters",
                       *map(str, adapters), "--tasks", args.tasks, "--output_path", str(tmp / "sweep"),
                       "--metadata", metadata, *common], env)
        for name, seconds in evaluation_seconds(tmp / "sweep").items():
            print(f"  fm5 eval, {name}: evaluation {seconds:.1f}s")
        print(f"fm5 eval, base + 3 adapters, one process: {sweep:.1f}s")

        separate = 0.0
        for i, extra in enumerate([""] + [f",peft={a}" for a in adapters]):
            t = timed([sys.executable, "-m", "lm_eval", "--include_path", str(REPO / "tasks"), "--tasks",
                       args.tasks, "--model", "hf", "--model_args", model_args + extra,
                       "--device", "cpu", "--metadata", metadata, "--output_path", str(tmp / f"lm_eval_{i}"),
                       "--log_samples", *common], env)
            (seconds,) = evaluation_seconds(tmp / f"lm_eval_{i}").values()
            print(f"stock lm_eval run {i + 1}/4: {t:.1f}s (evaluation {seconds:.1f}s)")
            separate += t
        print(f"4 separate lm_eval runs: {separate:.1f}s")
        print(f"ratio {separate / sweep:.2f}")


if __name__ == "__main__":
    main()
