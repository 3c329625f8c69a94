"""The knowledge run, replicated: the embedded CPU recipe (training/configs/smollm2_cpu.yaml, frozen in a commit)
trained and evaluated on split seeds that no experiment has used, every run reported.

    python bench/knowledge_runs.py --data ../shared/fm5/qa_pairs.jsonl --seeds 31415 27182 16180 --out runs/replication

Per seed: `fm5 train` (the config as committed, only --split_seed changed) -> `fm5 eval` of the base and the final
adapter (the declared comparison; copied out of the run folder with its fm5_run.json so that the document stage and
the checkpoints are not evaluated) on both probes (`--tasks`; the split read back from fm5_run.json: 75 seen + 75
unseen questions) -> `fm5 report`. Each seed's result is one JSON line, printed and appended to `OUT/log.txt` as it
finishes: both lines of the verdict (stored, usable), the diff-in-diffs behind them with intervals and p-values,
the probe's transitions, the stages and the times (a failed run is recorded as failed, and the next seed still runs).
bench/recipe_grid.py runs its cells through the same functions. Leave the checkout alone while it runs: the `fm5`
subprocesses read it, and lm-eval reads the task hooks from the installed checkout.
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

from harness_ext import run_layout

REPO = Path(__file__).resolve().parents[1]
TASKS = "fm5_qa_mc_closed,fm5_doc_mc"  # the usable line's probe and the stored line's
# the diff-in-diff rows each result carries: the stored line's, the usable line's, and the exploratory ones
ROWS = (("fm5_doc_mc", "margin"), ("fm5_qa_mc_closed", "margin"), ("fm5_qa_mc_closed", "acc"),
        ("fm5_qa_mc_closed", "acc_pmi"))
# the final adapter and its provenance, as the run layout names them (harness_ext.run_layout)
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", run_layout.RUN_FILE, run_layout.PLAN_FILE)


def run(cmd: list[str], log: Path) -> bool:
    with open(log, "a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        return subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT,
                              env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}).returncode == 0


def record(out: Path, result: dict) -> None:
    """One run's result: printed, and appended to OUT/log.txt (the record across sessions)."""
    line = json.dumps(result)
    print(line, flush=True)
    with open(out / "log.txt", "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def copy_final(train: Path, final: Path) -> None:
    """The final adapter alone (with its provenance), so that `fm5 eval` does not evaluate the document stage and
    every checkpoint of the run folder."""
    shutil.rmtree(final, ignore_errors=True)
    final.mkdir()
    for name in ADAPTER_FILES:
        shutil.copy2(train / name, final / name)


def summary(report, train: Path) -> dict:
    """What a result line carries from the report (both lines of the verdict, the diff-in-diffs of ROWS) and from
    the run's fm5_run.json (its stages and study-question counts)."""
    provenance = json.loads((train / run_layout.RUN_FILE).read_text())
    return {
        "lines": [line.sentence for line in report.verdict_lines],
        "pair": report.verdict.sentence,
        "did": {f"{d.task} {d.metric}": {"seen": d.seen_gain, "unseen": d.unseen_gain, "did": d.did.text,
                                         "interval": d.interval, "p": d.p, "holm": d.p_holm}
                for d in report.did if (d.task, d.metric) in ROWS},
        "transitions": [f"{t.model} {t.group}: learned {t.learned}, forgotten {t.forgotten}"
                        for t in report.transitions],
        "stages": [{k: s.get(k) for k in ("name", "global_step", "sequences", "rows", "texts", "views")}
                   for s in provenance["stages"]],
        "study_questions": (provenance.get("decontamination") or {}).get("study_questions"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--seeds", nargs="+", type=int, required=True)
    p.add_argument("--out", default="runs/replication")
    p.add_argument("--config", default=str(REPO / "training" / "configs" / "smollm2_cpu.yaml"))
    p.add_argument("--tasks", default=TASKS, help=f"the probes evaluated (default: {TASKS})")
    args = p.parse_args()

    # everything this process imports, imported now: a run takes hours, and a module read later from a checkout
    # edited in the meantime would not match the ones already loaded (see the module docstring)
    from harness_ext.models import packaged_smollm2
    from reports.build import build

    pretrained, gguf = packaged_smollm2()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fm5 = [sys.executable, "-m", "fm5"]
    for seed in args.seeds:
        t0, log = time.time(), out / f"seed-{seed}.log"
        train, evals, final = out / f"seed-{seed}", out / f"evals-{seed}", out / f"final-{seed}"
        ok = run([*fm5, "train", "--config", args.config, "--data", args.data, "--output_dir", str(train),
                  "--split_seed", str(seed), "--overwrite"], log)
        t_train = time.time() - t0
        if ok:
            copy_final(train, final)
        ok = ok and run([*fm5, "eval", "--model_args", f"pretrained={pretrained},gguf_file={gguf}", "--adapters",
                         str(final), "--tasks", args.tasks, "--apply_chat_template", "--data", args.data,
                         "--output_path", str(evals), "--overwrite"], log)
        t_eval = time.time() - t0 - t_train
        if not ok:
            record(out, {"seed": seed, "status": "failed", "log": str(log)})
            continue
        report = build([str(evals)], str(evals / "base"))
        record(out, {"seed": seed, "status": "ok", "config": args.config, "train_s": round(t_train),
                     "eval_s": round(t_eval), **summary(report, train)})


if __name__ == "__main__":
    main()
