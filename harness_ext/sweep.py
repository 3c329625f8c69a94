"""A sweep: a base model and any number of PEFT adapters, evaluated in one process (`fm5 eval`, fm5/commands/eval.py).

The base is loaded once (GGUF: from the conversion cache), every adapter is attached to it with PEFT and switched
with `set_adapter` / `disable_adapter`, and lm-eval's own `simple_evaluate` + `EvaluationTracker` write, per model,
exactly the files `lm_eval --output_path X --log_samples` writes (one folder per model).

The plan (keep / copy / evaluate per model), the staged writes that lose nothing and the data-parallel path share
their state and are read together; each is a section below.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness_ext import models, prompts, run_layout, tasks_path
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


def base_model_args(text: str) -> dict:
    """`pretrained=X,gguf_file=Y` or a JSON object, as `lm_eval --model_args` takes them, naming a base model."""
    from harness_ext.results import parse_model_args as parse

    args = parse(text)
    if "pretrained" not in args:
        raise UsageError("--model_args needs pretrained=MODEL")
    return args


def expand_adapters(paths: list[str], final_only: bool = False) -> list[Target]:
    """Each PATH is an adapter folder, or a training output_dir: its document-stage adapter (document/), its
    checkpoint-* (by step) and its final adapter (``final_only``: the final adapter alone, the declared comparison's
    side; a run with no final adapter yet is then an error)."""
    targets = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise models.ModelError(f"{path}: adapter or checkpoint folder not found")
        if final_only:
            if not (path / "adapter_config.json").is_file():
                raise models.ModelError(f"{path}: no final adapter (--final_only); an unfinished run holds only "
                                        "checkpoints")
            targets.append(Target(path.name, models.check_adapter_dir(path)))
            continue
        checkpoints = run_layout.checkpoints(path)
        document = run_layout.document_adapter(path)
        if document:  # the document stage's adapter, before QA
            targets.append(Target(run_layout.adapter_label(document), models.check_adapter_dir(document)))
        for ckpt in checkpoints:
            targets.append(Target(run_layout.adapter_label(ckpt), models.check_adapter_dir(ckpt)))
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


@dataclass
class LmEvalOptions:
    """The lm-eval settings of one sweep (``fm5 eval`` passes its pass-through flags here)."""

    limit: float | None = None
    batch_size: str | int = "8"  # fixed by default: `auto` probing costs minutes on a CPU
    gen_kwargs: str | None = None
    apply_chat_template: bool = False
    system_instruction: str | None = None
    metadata: dict = field(default_factory=dict)  # task metadata, e.g. {"fm5_data": PATH}
    device: str | None = None


def evaluate_all(model_args: dict, adapters: list[str], tasks: list[str], output_path: str, opts: LmEvalOptions,
                 include_base: bool = True, overwrite: bool = False, final_only: bool = False) -> list[Path]:
    """Evaluate the base (unless ``include_base`` is False) and every adapter (``expand_adapters``) into
    ``output_path/<model>/``. A model
    whose folder exists is kept (skipped) unless ``overwrite``; new results appear under their final name only
    when complete (`_staging`).

    Under torchrun / accelerate launch every rank runs this same sequence: lm-eval shards each task's documents by
    rank, rank 0 converts a GGUF base (the others wait at a barrier), adapters are switched on every rank in step
    (each `simple_evaluate` synchronises them), and rank 0 gathers the samples and writes the folders."""
    targets = ([Target("base", None)] if include_base else []) + expand_adapters(adapters, final_only)
    if not targets:
        raise UsageError("nothing to evaluate: no base (--no-base) and no adapters")
    opts.metadata, note = run_layout.split_of_runs([t.adapter for t in targets if t.adapter], opts.metadata)

    import torch
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager, get_task_dict

    rank, world, device = join_process_group(opts.device)
    say = print if rank == 0 else (lambda *a, **k: None)
    if note:
        say(note)
    # one task index for all models: building it scans every lm-eval task folder (~8 s); lm-eval's own tasks are
    # only indexed when a requested task is not ours. Loading the tasks once here checks the data, the split and
    # the probe's options before any model is loaded.
    metadata = {**model_args, **opts.metadata}
    task_manager = TaskManager(include_path=str(tasks_path()), metadata=metadata,
                               include_defaults=any(not t.startswith("fm5_") for t in tasks))
    get_task_dict(tasks, task_manager)

    # what happens to each model, decided on every rank before anything is written
    out_root = Path(output_path)
    plan, first = [], {}
    for t in targets:
        folder = out_root / t.folder
        digest = _weights_digest(t.adapter) if t.adapter else "base"
        if folder.exists() and not overwrite:
            plan.append((t, folder, "keep", None))
            first.setdefault(digest, folder)
        elif digest in first:  # e.g. the final adapter saved from the last checkpoint: same weights, same scores
            plan.append((t, folder, "copy", first[digest]))
        else:
            plan.append((t, folder, "evaluate", None))
            first[digest] = folder
    if rank == 0 and out_root.is_dir():
        remove_leftovers(out_root)
    if world > 1:
        torch.distributed.barrier()

    started = time.time()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    evaluated = [t for t, _, action, _ in plan if action == "evaluate"]
    lm, model, peft_model = (_load(model_args, evaluated, device, opts.batch_size, world, say) if evaluated
                             else (None, None, None))  # everything kept or reused: no model needed
    written = []
    for n, (t, folder, action, source) in enumerate(plan, start=1):
        args = {**model_args, **({"peft": str(t.adapter)} if t.adapter else {})}
        written.append(folder)
        if action == "keep":
            say(f"[fm5 eval] {n}/{len(plan)} {t.label}: kept {folder} (evaluated before; --overwrite to replace it)",
                flush=True)
            continue
        if action == "copy":
            if rank == 0:
                with _staging(folder) as tmp:
                    _copy_run(source, tmp, args)
            say(f"[fm5 eval] {n}/{len(plan)} {t.label}: same weights as {source.name}, results reused", flush=True)
            continue
        t0 = time.time()
        say(f"[fm5 eval] {n}/{len(plan)} {t.label}: evaluating {', '.join(tasks)}", flush=True)
        context = contextlib.nullcontext()
        if t.adapter is None and peft_model is not model:
            context = peft_model.disable_adapter()
        elif t.adapter is not None:
            peft_model.set_adapter(t.name)
        with (_staging(folder) if rank == 0 else contextlib.nullcontext(None)) as tmp, context:
            tracker = EvaluationTracker(output_path=str(tmp / "results.json") if tmp else None)
            results = simple_evaluate(
                model=lm, model_args=args, tasks=tasks, limit=opts.limit, log_samples=True,
                evaluation_tracker=tracker, apply_chat_template=opts.apply_chat_template,
                system_instruction=opts.system_instruction, gen_kwargs=opts.gen_kwargs,
                task_manager=task_manager, batch_size=opts.batch_size, device=device, metadata=metadata,
            )
            if rank == 0:  # the other ranks' samples were gathered here
                samples = results.pop("samples")
                tracker.save_results_aggregated(results=results, samples=samples)
                for task_name in results["configs"]:
                    tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
        if rank == 0:
            summary = ", ".join(
                f"{task} " + " ".join(f"{m}={vals[m + ',none']:.3f}" for m in SUMMARY_METRICS if m + ",none" in vals)
                for task, vals in results["results"].items() if any(m + ",none" in vals for m in SUMMARY_METRICS)
            )
            say(f"[fm5 eval] {n}/{len(plan)} {t.label}: done in {time.time() - t0:.0f}s ({summary})", flush=True)
    if world > 1:
        torch.distributed.barrier()  # every folder is written before any rank returns
    say(f"[fm5 eval] {len(plan)} model(s) in {time.time() - started:.0f}s -> {out_root}", flush=True)
    return written


def join_process_group(device: str | None) -> tuple[int, int, str | None]:
    """(rank, world size, device) of this process. Under torchrun / accelerate launch (WORLD_SIZE > 1) it joins the
    process group: NCCL with one GPU per rank (LOCAL_RANK), gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    import torch
    import torch.distributed as dist

    cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), f"cuda:{local}" if cuda else "cpu"


def _load(model_args: dict, targets: list[Target], device: str, batch_size, world: int, say):
    """(lm, base model, PEFT model) for the models to evaluate: the base once, every adapter attached to it first,
    so that an adapter that does not fit fails before any evaluation."""
    from harness_ext.lm import PrefixSharingHFLM

    started = time.time()
    pretrained, gguf_file = model_args["pretrained"], model_args.get("gguf_file")
    dtype = model_args.get("dtype", "float32" if device == "cpu" else "bfloat16")
    model, tokenizer = models.load_base(pretrained, gguf_file, dtype=dtype, device=device)
    model.eval()
    say(f"[fm5 eval] base {pretrained}{' ' + gguf_file if gguf_file else ''} loaded in {time.time() - started:.1f}s"
        + (f" on each of {world} ranks" if world > 1 else ""), flush=True)
    from peft import PeftModel

    peft_model = model
    for i, t in enumerate(t for t in targets if t.adapter is not None):
        t.name = f"fm5_adapter_{i}"
        try:
            if i == 0:
                peft_model = PeftModel.from_pretrained(model, str(t.adapter), adapter_name=t.name)
            else:
                peft_model.load_adapter(str(t.adapter), adapter_name=t.name)
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            lines = str(err).strip().splitlines()
            reason = next((ln.strip() for ln in lines if "size mismatch" in ln), lines[0] if lines else "")
            reason = reason.replace("torch.Size(", "(")
            raise models.ModelError(f"{t.adapter}: does not fit base {pretrained} ({reason[:300]})") from None
    peft_model.eval()
    # lm-eval's HF backend, scoring requests that share a prompt from one pass over it (harness_ext.lm)
    lm = PrefixSharingHFLM(pretrained=peft_model, tokenizer=tokenizer, batch_size=batch_size, device=device,
                           chat_template_args=dict(prompts.CHAT_TEMPLATE_KWARGS))
    if world > 1:
        lm.join_process_group()
    return lm, model, peft_model


PARTIAL = ".partial-"  # `.<folder>.partial-<pid>`: a model's results being written (hidden, never read)


@contextlib.contextmanager
def _staging(folder: Path):
    """A model's results are written into a hidden folder beside ``folder`` and renamed into place once complete;
    an existing ``folder`` is replaced only then. On an error (or a kill) nothing under the final name changes;
    leftovers of killed runs are removed by the next run (`remove_leftovers`)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}{PARTIAL}{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if folder.exists():  # --overwrite: the old results stay until the new ones are complete
        old = folder.parent / f".{folder.name}.old-{os.getpid()}"
        os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, folder)


def remove_leftovers(out_root: Path) -> None:
    """Hidden partial (or replaced) model folders of killed runs: removed unless their process still runs."""
    for stale in list(out_root.glob(f".*{PARTIAL}*")) + list(out_root.glob(".*.old-*")):
        pid = stale.name.rsplit("-", 1)[-1]
        if stale.is_dir() and not (pid.isdigit() and _alive(int(pid))):
            shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _copy_run(source: Path, folder: Path, model_args: dict) -> None:
    """Results of identical weights, under this model's name: the same files with its model_args."""
    for f in source.iterdir():
        if f.name.startswith("results_"):
            res = json.loads(f.read_text())
            res["config"]["model_args"] = model_args
            (folder / f.name).write_text(json.dumps(res, indent=2, ensure_ascii=False))
        else:
            shutil.copy2(f, folder / f.name)


def peer_failed(err: Exception) -> bool:
    """A collective that failed because another rank is gone (gloo: the connection closed; NCCL: aborted)."""
    import torch.distributed as dist

    text = str(err).lower()
    return isinstance(err, getattr(dist, "DistError", ())) or any(
        w in text for w in ("connection closed", "connection reset", "broken pipe"))
