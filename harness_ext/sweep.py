"""`fm5 eval`: a base model and any number of PEFT adapters, evaluated in one process.

The base is loaded once (GGUF: from the conversion cache), every adapter is attached to it with PEFT and switched
with `set_adapter` / `disable_adapter`, and lm-eval's own `simple_evaluate` + `EvaluationTracker` write, per model,
exactly the files `lm_eval --output_path X --log_samples` writes (one folder per model).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from harness_ext import models, prompts, tasks_path
from harness_ext.errors import UsageError

log = logging.getLogger("fm5.eval")
SUMMARY_METRICS = ("f1", "perplexity", "acc", "margin")  # printed after each model


@dataclass
class Target:
    label: str  # also the output folder name ("/" -> "__")
    adapter: Path | None  # None: the base model
    name: str = ""  # PEFT adapter name (not the label: `train`, `forward`... are attributes of a PeftModel)

    @property
    def folder(self) -> str:
        return self.label.replace("/", "__")


def parse_model_args(text: str) -> dict:
    """`pretrained=X,gguf_file=Y` or a JSON object, as `lm_eval --model_args` takes them."""
    from harness_ext.results import parse_model_args as parse

    args = parse(text)
    if "pretrained" not in args:
        raise UsageError("--model_args needs pretrained=MODEL")
    return args


def expand_adapters(paths: list[str]) -> list[Target]:
    """Each PATH is an adapter folder, or a training output_dir: its document-stage adapter (document/), its
    checkpoint-* (by step) and its final adapter."""
    targets = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise models.ModelError(f"{path}: adapter or checkpoint folder not found")
        checkpoints = sorted((p for p in path.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                             key=lambda p: int(p.name.split("-")[-1]))
        if (path / "document" / "adapter_config.json").is_file():  # the document stage's adapter, before QA
            targets.append(Target(f"{path.name}/document", models.check_adapter_dir(path / "document")))
        for ckpt in checkpoints:
            targets.append(Target(f"{path.name}/{ckpt.name}", models.check_adapter_dir(ckpt)))
        if (path / "adapter_config.json").is_file() or not checkpoints:
            targets.append(Target(path.name, models.check_adapter_dir(path)))
    labels = [t.label for t in targets]
    if len(set(labels)) != len(labels):
        raise UsageError(f"two adapters share a name: {labels}; give them distinct folder names")
    return targets


def _weights_digest(adapter: Path) -> str:
    h = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        if (adapter / name).is_file():
            h.update((adapter / name).read_bytes())
    return h.hexdigest()


def _lm_eval_options(extra: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="fm5 eval", add_help=False)
    p.add_argument("--limit", type=float)
    p.add_argument("--batch_size", default="8", help="fixed by default: `auto` probing costs minutes on a CPU")
    p.add_argument("--gen_kwargs")
    p.add_argument("--apply_chat_template", action="store_true")
    p.add_argument("--system_instruction")
    p.add_argument("--metadata", default="{}")
    p.add_argument("--device")
    p.add_argument("--data", help="shorthand for --metadata '{\"fm5_data\": PATH}'")
    opts, unknown = p.parse_known_args(extra)
    if unknown:
        raise UsageError(f"fm5 eval: unsupported option(s) {' '.join(unknown)}")
    try:
        opts.metadata = json.loads(opts.metadata)
    except json.JSONDecodeError as err:
        raise UsageError(f"--metadata: invalid JSON ({err.msg})") from None
    if opts.data:
        opts.metadata["fm5_data"] = opts.data
    return opts


def evaluate_all(model_args: dict, adapters: list[str], tasks: list[str], output_path: str, opts,
                 include_base: bool = True) -> list[Path]:
    targets = ([Target("base", None)] if include_base else []) + expand_adapters(adapters)
    if not targets:
        raise UsageError("nothing to evaluate: no base (--no-base) and no adapters")

    import torch
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager, get_task_dict

    from harness_ext.lm import PrefixSharingHFLM

    # one task index for all models: building it scans every lm-eval task folder (~8 s); lm-eval's own tasks are
    # only indexed when a requested task is not ours. Loading the tasks once here checks the data, the split and
    # the probe's options before any model is loaded.
    metadata = {**model_args, **opts.metadata}
    task_manager = TaskManager(include_path=str(tasks_path()), metadata=metadata,
                               include_defaults=any(not t.startswith("fm5_") for t in tasks))
    get_task_dict(tasks, task_manager)

    device = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
    started = time.time()
    pretrained, gguf_file = model_args["pretrained"], model_args.get("gguf_file")
    dtype = model_args.get("dtype", "float32" if device == "cpu" else "bfloat16")
    model, tokenizer = models.load_base(pretrained, gguf_file, dtype=dtype, device=device)
    model.eval()
    print(f"[fm5 eval] base {pretrained}{' ' + gguf_file if gguf_file else ''} loaded in "
          f"{time.time() - started:.1f}s", flush=True)

    peft_model = model
    adapters_only = [t for t in targets if t.adapter is not None]
    if adapters_only:
        from peft import PeftModel

        for i, t in enumerate(adapters_only):  # attach them all first: a bad adapter fails before any evaluation
            t.name = f"fm5_adapter_{i}"
            try:
                if i == 0:
                    peft_model = PeftModel.from_pretrained(model, str(t.adapter), adapter_name=t.name)
                else:
                    peft_model.load_adapter(str(t.adapter), adapter_name=t.name)
            except (RuntimeError, ValueError, KeyError) as err:
                lines = str(err).strip().splitlines()
                reason = next((ln.strip() for ln in lines if "size mismatch" in ln), lines[0] if lines else "")
                reason = reason.replace("torch.Size(", "(")
                raise models.ModelError(f"{t.adapter}: does not fit base {pretrained} ({reason[:300]})") from None
        peft_model.eval()

    # lm-eval's HF backend, scoring requests that share a prompt from one pass over it (harness_ext.lm)
    lm = PrefixSharingHFLM(pretrained=peft_model, tokenizer=tokenizer, batch_size=opts.batch_size, device=device,
                           chat_template_args=dict(prompts.CHAT_TEMPLATE_KWARGS))
    out_root = Path(output_path)
    written, seen = [], {}
    for n, t in enumerate(targets, start=1):
        folder = out_root / t.folder
        if folder.exists():
            shutil.rmtree(folder)  # a re-run replaces that model's results, as a fresh lm_eval run would
        args = {**model_args, **({"peft": str(t.adapter)} if t.adapter else {})}
        digest = _weights_digest(t.adapter) if t.adapter else "base"
        if digest in seen:  # e.g. the final adapter saved from the last checkpoint: same weights, same scores
            _copy_run(seen[digest], folder, args)
            print(f"[fm5 eval] {n}/{len(targets)} {t.label}: same weights as {seen[digest].name}, results reused",
                  flush=True)
            written.append(folder)
            continue
        t0 = time.time()
        print(f"[fm5 eval] {n}/{len(targets)} {t.label}: evaluating {', '.join(tasks)}", flush=True)
        tracker = EvaluationTracker(output_path=str(folder / "results.json"))
        context = contextlib.nullcontext()
        if t.adapter is None and peft_model is not model:
            context = peft_model.disable_adapter()
        elif t.adapter is not None:
            peft_model.set_adapter(t.name)
        with context:
            results = simple_evaluate(
                model=lm, model_args=args, tasks=tasks, limit=opts.limit, log_samples=True,
                evaluation_tracker=tracker, apply_chat_template=opts.apply_chat_template,
                system_instruction=opts.system_instruction, gen_kwargs=opts.gen_kwargs,
                task_manager=task_manager, batch_size=opts.batch_size, device=device, metadata=metadata,
            )
        samples = results.pop("samples")
        tracker.save_results_aggregated(results=results, samples=samples)
        for task_name in results["configs"]:
            tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
        seen[digest] = folder
        written.append(folder)
        summary = ", ".join(
            f"{task} " + " ".join(f"{m}={vals[m + ',none']:.3f}" for m in SUMMARY_METRICS if m + ",none" in vals)
            for task, vals in results["results"].items() if any(m + ",none" in vals for m in SUMMARY_METRICS)
        )
        print(f"[fm5 eval] {n}/{len(targets)} {t.label}: done in {time.time() - t0:.0f}s ({summary})", flush=True)
    print(f"[fm5 eval] {len(targets)} model(s) in {time.time() - started:.0f}s -> {out_root}", flush=True)
    return written


def _copy_run(source: Path, folder: Path, model_args: dict) -> None:
    """Results of identical weights, under this model's name: the same files with its model_args."""
    folder.mkdir(parents=True)
    for f in source.iterdir():
        if f.name.startswith("results_"):
            res = json.loads(f.read_text())
            res["config"]["model_args"] = model_args
            (folder / f.name).write_text(json.dumps(res, indent=2, ensure_ascii=False))
        else:
            shutil.copy2(f, folder / f.name)


def main(args, extra: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING)
    opts = _lm_eval_options(extra)
    model_args = parse_model_args(args.model_args)
    tasks = [t for t in args.tasks.split(",") if t]
    evaluate_all(model_args, args.adapters, tasks, args.output_path, opts, include_base=args.base)
    return 0
