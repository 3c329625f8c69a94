"""Benchmark: the same `fm5 eval` sweep in one process and data-parallel in N processes (torchrun, one thread
each on CPU), one after the other in one run.

    python bench/eval_parallel.py --data ../shared/fm5/qa_pairs.jsonl [--processes 2] [--limit 20] [--adapters 1]

The base is the packaged SmolLM2-135M GGUF (conversion cache warmed first), the adapters random LoRA adapters, the
tasks the probe and the QA tasks. Prints both wall times, whether the metrics agree (1e-6), and `speedup X.XX`.
On 2 CPU cores there is little to gain (the single process already uses both cores for its matrix products); the
point is that the same command shards the questions over GPUs (README, "Evaluating on several GPUs").
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

from eval_sweep import make_adapters

REPO = Path(__file__).resolve().parents[1]


def run(cmd: list[str], env: dict) -> float:
    started = time.time()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return time.time() - started


def aggregates(folder: Path) -> dict:
    out = {}
    for results in sorted(folder.glob("*/results_*.json")):
        for task, values in json.loads(results.read_text())["results"].items():
            out.update({(results.parent.name, task, k): v for k, v in values.items() if isinstance(v, float)})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--adapters", type=int, default=1)
    p.add_argument("--max_gen_toks", type=int, default=32)
    p.add_argument("--tasks", default="fm5_qa_mc_closed,fm5_qa_mc_open,fm5_qa_closed,fm5_qa_open")
    args = p.parse_args()
    args.data = str(Path(args.data).resolve())  # the runs start in the repository root

    from harness_ext.models import converted_base, packaged_smollm2

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    pretrained, gguf = packaged_smollm2()
    converted_base(pretrained, gguf)  # warm the conversion cache for both sides
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        adapters = make_adapters(tmp, args.adapters)
        common = ["eval", "--model_args", f"pretrained={pretrained},gguf_file={gguf}", "--adapters", *map(str, adapters),
                  "--tasks", args.tasks, "--limit", str(args.limit), "--batch_size", "8", "--gen_kwargs",
                  f"max_gen_toks={args.max_gen_toks}", "--apply_chat_template", "--data", args.data]
        one = run([sys.executable, "-m", "fm5", *common, "--output_path", str(tmp / "one")], env)
        torchrun = str(Path(sys.executable).parent / "torchrun")
        many = run([torchrun, "--nproc_per_node", str(args.processes), "-m", "fm5", *common,
                    "--output_path", str(tmp / "many")], {**env, "OMP_NUM_THREADS": "1"})
        a, b = aggregates(tmp / "one"), aggregates(tmp / "many")
        same = a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 1e-6 for k in a)
    models = 1 + args.adapters
    print(f"{models} models x {args.tasks} (--limit {args.limit}), {os.cpu_count()} CPU cores")
    print(f"one process:             {one:7.1f} s")
    print(f"{args.processes} processes (torchrun): {many:7.1f} s")
    print(f"metrics agree (1e-6): {same}")
    print(f"speedup {one / many:.2f}")


if __name__ == "__main__":
    main()
