"""The knowledge run, replicated: the embedded CPU recipe (training/configs/smollm2_cpu.yaml, frozen in a commit)
trained and evaluated on split seeds that no experiment has used, every run reported.

    python bench/knowledge_runs.py --data ../shared/fm5/qa_pairs.jsonl --seeds 20261202 20261203 20261204 --out runs/replication

Per seed: `fm5 train` (the config as committed, only --split_seed changed) -> `fm5 eval` of the base and the final
adapter (the declared comparison; copied out of the run folder with its fm5_run.json so that the document stage and
the checkpoints are not evaluated, which keeps a seed under 30 minutes on 2 cores) on the closed-book probe (the
split read back from fm5_run.json: 75 seen + 75 unseen questions) -> `fm5 report`. Prints, per seed and model, the declared comparison's sentence and the
diff-in-diff of margin, acc and acc_pmi with their intervals and p-values, as each run finishes (a failed run is
printed as failed, and the next seed still runs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METRICS = ("margin", "acc", "acc_pmi")


def run(cmd: list[str], log: Path) -> bool:
    with open(log, "a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        return subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT,
                              env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}).returncode == 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--seeds", nargs="+", type=int, required=True)
    p.add_argument("--out", default="runs/replication")
    p.add_argument("--config", default=str(REPO / "training" / "configs" / "smollm2_cpu.yaml"))
    args = p.parse_args()

    # everything this process imports, imported now: a run takes hours, and a module read later from a checkout
    # edited in the meantime would not match the ones already loaded (leave the checkout alone while it runs; the
    # fm5 subprocesses read it too, and lm-eval reads the task hooks from the installed checkout)
    from harness_ext.models import packaged_smollm2
    from reports.build import build

    pretrained, gguf = packaged_smollm2()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fm5 = [sys.executable, "-m", "fm5"]
    for seed in args.seeds:
        t0, log = time.time(), out / f"seed-{seed}.log"
        train, evals = out / f"seed-{seed}", out / f"evals-{seed}"
        ok = run([*fm5, "train", "--config", args.config, "--data", args.data, "--output_dir", str(train),
                  "--split_seed", str(seed), "--overwrite"], log)
        t_train = time.time() - t0
        final = out / f"final-{seed}"
        if ok:
            shutil.rmtree(final, ignore_errors=True)
            final.mkdir()
            for name in ("adapter_config.json", "adapter_model.safetensors", "fm5_run.json", "fm5_plan.json"):
                shutil.copy2(train / name, final / name)
        ok = ok and run([*fm5, "eval", "--model_args", f"pretrained={pretrained},gguf_file={gguf}", "--adapters",
                         str(final), "--tasks", "fm5_qa_mc_closed", "--apply_chat_template", "--data", args.data,
                         "--output_path", str(evals), "--overwrite"], log)
        t_eval = time.time() - t0 - t_train
        if not ok:
            print(json.dumps({"seed": seed, "status": "failed", "log": str(log)}), flush=True)
            continue
        report = build([str(evals)], str(evals / "base"))
        rows = {(d.model, d.metric): d for d in report.did}
        print(json.dumps({
            "seed": seed, "status": "ok", "train_s": round(t_train), "eval_s": round(t_eval),
            "verdict": {"model": report.verdict.model, "comparison": report.verdict.comparison,
                        "sentence": report.verdict.sentence},
            "did": {f"{model} {metric}": {"seen": d.seen_gain, "unseen": d.unseen_gain, "did": d.did.text,
                                          "interval": d.interval, "p": d.p, "holm": d.p_holm}
                    for (model, metric), d in rows.items() if metric in METRICS},
            "closure_and_transitions": [f"{t.model} {t.group}: learned {t.learned}, forgotten {t.forgotten}"
                                        for t in report.transitions],
        }), flush=True)


if __name__ == "__main__":
    main()
