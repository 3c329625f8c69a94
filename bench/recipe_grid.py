"""The screening grid of issue 28 (bench/recipe_grid.yaml, declared before its first run): per cell, train the
committed CPU recipe with the cell's overrides on the development split, evaluate the final adapter on both probes,
and print both lines of the verdict against the base with the diff-in-diffs behind them, as each cell finishes.

    python bench/recipe_grid.py --data ../shared/fm5/qa_pairs.jsonl --out runs/grid [--cells NAME ...]

The base is evaluated once per split (`OUT/evals-base`, kept and reused: it does not change between cells). Each
cell's result is one JSON line, printed and appended to `OUT/log.txt`; a failed cell is recorded as failed and the
next one still runs. Leave the checkout alone while it runs: the `fm5`
subprocesses read it, and lm-eval reads the task hooks from the installed checkout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# the replication's runner, recorder and result line (bench/ is on sys.path when run as a script)
from knowledge_runs import copy_final, record, run, summary

REPO = Path(__file__).resolve().parents[1]
GRID = REPO / "bench" / "recipe_grid.yaml"


def overrides_argv(overrides: dict) -> list[str]:
    return [a for k, v in overrides.items() for a in (f"--{k}", json.dumps(v) if isinstance(v, bool) else str(v))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--out", default="runs/grid")
    p.add_argument("--grid", default=str(GRID))
    p.add_argument("--cells", nargs="*", help="cell names (default: every declared cell with overrides)")
    p.add_argument("--limit", type=int, help="smoke run only: evaluate N questions per task (never for the README)")
    args = p.parse_args()

    # everything this process imports, imported now (a run takes hours; see the module docstring)
    import yaml

    from harness_ext.models import packaged_smollm2
    from reports.build import build

    grid = yaml.safe_load(Path(args.grid).read_text())
    cells = [c for c in grid["cells"] if c["overrides"] is not None and (not args.cells or c["name"] in args.cells)]
    unknown = set(args.cells or []) - {c["name"] for c in grid["cells"]}
    if unknown:
        sys.exit(f"recipe_grid: no cell {sorted(unknown)} in {args.grid}")
    pretrained, gguf = packaged_smollm2()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fm5 = [sys.executable, "-m", "fm5"]
    model_args = ["--model_args", f"pretrained={pretrained},gguf_file={gguf}", "--tasks", grid["tasks"],
                  "--apply_chat_template", "--data", args.data, *(["--limit", str(args.limit)] if args.limit else [])]
    base = out / "evals-base"
    if not (base / "base").is_dir():  # the split the cells train on (the config's test size and seen fraction)
        split = {"fm5_test_size": 0.3, "fm5_split_seed": grid["split_seed"], "fm5_seen_fraction": 0.5}
        t0 = time.time()
        ok = run([*fm5, "eval", *model_args, "--metadata", json.dumps(split), "--output_path", str(base)],
                 out / "base.log")
        record(out, {"cell": "base", "status": "ok" if ok else "failed", "eval_s": round(time.time() - t0)})
        if not ok:
            return
    for cell in cells:
        name, t0, log = cell["name"], time.time(), out / f"{cell['name']}.log"
        train, final, evals = out / f"train-{name}", out / f"final-{name}", out / f"evals-{name}"
        ok = run([*fm5, "train", "--config", str(REPO / grid["config"]), "--data", args.data, "--output_dir",
                  str(train), "--split_seed", str(grid["split_seed"]), "--overwrite",
                  *overrides_argv(cell["overrides"])], log)
        t_train = time.time() - t0
        if ok:
            copy_final(train, final)
        ok = ok and run([*fm5, "eval", *model_args, "--no-base", "--adapters", str(final), "--output_path",
                         str(evals), "--overwrite"], log)
        t_eval = time.time() - t0 - t_train
        if not ok:
            record(out, {"cell": name, "status": "failed", "log": str(log)})
            continue
        report = build([str(base / "base"), str(evals / final.name)], str(base / "base"))
        record(out, {"cell": name, "status": "ok", "overrides": cell["overrides"], "train_s": round(t_train),
                     "eval_s": round(t_eval), **summary(report, train)})


if __name__ == "__main__":
    main()
