"""LoRA fine-tuning on FM 5-0 with TRL's SFTTrainer: a document stage, then the QA stage, into one adapter.

    fm5 train --config training/configs/smollm2_cpu.yaml --data ../shared/fm5/qa_pairs.jsonl --output_dir runs/smollm2
    accelerate launch -m training.sft --config training/configs/llama32_1b_gpu.yaml --output_dir runs/llama

Reads top to bottom: check everything (config, data, model config, output dir) -> load data, the shared split and
its seen/unseen halves -> the document corpus (the QA file's passages and --document texts, minus everything that
shares a long span with an unseen passage) and prompt/completion rows from the shared prompt builder -> load the
base (GGUF dequantized once, cached) -> 1. document stage (`document_epochs` > 0): causal-LM loss on every token of
the corpus, adapter saved to output_dir/document/ -> 2. QA stage: SFTTrainer on the QA rows, the same adapter
continuing -> save the adapter, checkpoints, trainer_state.json and fm5_run.json.
Any field of ScriptArguments or TRL's SFTConfig can be set in the YAML and overridden with `--key value`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from harness_ext import data as fm5_data
from harness_ext import prompts, runs
from harness_ext.errors import UsageError
from harness_ext.files import load_yaml, write_atomic

log = logging.getLogger("fm5.train")
CPU_CONFIG = Path(__file__).resolve().parent / "configs" / "smollm2_cpu.yaml"  # the embedded default (fm5 demo)
SCHEDULES = ("staged", "mixed")  # document_schedule: the document stage before the QA stage, or both in one


@dataclass
class ScriptArguments:
    """fm5's own settings; everything else is an SFTConfig field."""

    model_name_or_path: str = field(metadata={"help": "HF id or folder of the base model; pkg:NAME is the folder of "
                                                      "an installed Python package that ships a model"})
    gguf_file: str | None = field(default=None, metadata={"help": "GGUF file in that folder, dequantized and cached"})
    dtype: str = field(default="float32", metadata={"help": "weights dtype when loading the base"})
    attn_implementation: str | None = field(default=None, metadata={
        "help": "attention kernel (transformers' default: sdpa); with padding_free use flash_attention_2 where "
                "installed, else flex_attention (GPU only)"})
    data: str | None = field(default=None, metadata={"help": "QA file; --data, else this, else $FM5_DATA"})
    variant: str = field(default="open", metadata={"help": "open (passage in system turn), closed, or mixed (both)"})
    test_size: float = field(default=fm5_data.DEFAULT_TEST_SIZE,
                             metadata={"help": "held-out test split, shared with the lm-eval tasks"})
    split_seed: int = field(default=fm5_data.DEFAULT_SEED, metadata={"help": "seed of the shared split"})
    seen_fraction: float = field(default=fm5_data.DEFAULT_SEEN_FRACTION, metadata={
        "help": "part of the test split whose passages the document stage reads (the rest stay unseen: the control "
                "group)"})
    eval_size: float = field(default=fm5_data.DEFAULT_EVAL_SIZE,
                             metadata={"help": "part of the training rows kept for eval loss (0: none)"})
    document: str | None = field(default=None, metadata={
        "help": "JSONL with a `text` field (e.g. ../shared/fm5/fm5_chunks.jsonl) added to the document corpus; texts "
                "sharing a long span with an unseen passage are dropped"})
    document_passages: bool = field(default=True, metadata={
        "help": "put the QA file's passages (minus the unseen ones) into the document corpus"})
    document_epochs: float = field(default=0.0, metadata={"help": "epochs of the document stage (0: no stage)"})
    document_learning_rate: float | None = field(default=None, metadata={
        "help": "learning rate of the document stage (default: learning_rate)"})
    document_schedule: str = field(default="staged", metadata={
        "help": "staged: the document stage, then the QA stage (one adapter, two trainers); mixed: one stage over the "
                "document texts (each document_epochs times) and the QA rows (each num_train_epochs times) shuffled "
                "together, at document_learning_rate; the same rows and steps, interleaved"})
    max_document_rows: int | None = field(default=None, metadata={
        "help": "subsample the document corpus (demo); the seen test passages always stay"})
    max_train_rows: int | None = field(default=None, metadata={"help": "subsample the training rows (demo, tests)"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"],
                                           metadata={"help": "module names to adapt"})
    cpu_label_positions_only: bool = field(default=True, metadata={
        "help": "on CPU, TRL's LM head projects only the label positions (same numbers, ~1/3 faster; patches TRL's "
                "private _use_triton during training only)"})
    early_stopping_patience: int | None = field(default=None, metadata={"help": "evaluations without improvement"})
    early_stopping_threshold: float = field(default=0.0, metadata={"help": "minimum eval-loss improvement"})


# ------------------------------------------------------------------------------------------------ configuration


def _value(text: str):
    """A command-line value: true/false, null, an int, a float, a YAML list/mapping, else the string itself
    (so `--save_strategy no` stays the string "no", unlike YAML 1.1)."""
    import yaml

    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none", "~"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.strip()[:1] in "[{":
        try:
            return load_yaml(text)
        except (yaml.YAMLError, RecursionError) as err:
            raise UsageError(f"value {text[:40]!r}: invalid YAML ({str(err).splitlines()[0]})") from None
    return text


def _parse_overrides(extra: list[str]) -> dict:
    out, i = {}, 0
    while i < len(extra):
        key = extra[i]
        if not key.startswith("--"):
            raise UsageError(f"unexpected argument {key!r}; overrides are --key value")
        key = key[2:].replace("-", "_")
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        elif i + 1 < len(extra) and not extra[i + 1].startswith("--"):
            value, i = extra[i + 1], i + 2
        else:
            value, i = "true", i + 1
        try:
            out[key] = _value(value)
        except UsageError as err:
            raise UsageError(f"--{key}: {err}") from None
    return out


def load_config(config_path: str, overrides: dict) -> tuple[ScriptArguments, object]:
    """(ScriptArguments, SFTConfig) from the YAML file and the command-line overrides; unknown keys are errors."""
    import yaml
    from trl import SFTConfig

    try:
        raw = load_yaml(Path(config_path).read_bytes().decode("utf-8")) or {}
    except OSError as err:
        raise UsageError(f"{config_path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise UsageError(f"{config_path}: not UTF-8 (byte {err.start})") from None
    except (yaml.YAMLError, RecursionError) as err:
        raise UsageError(f"{config_path}: invalid YAML ({str(err).splitlines()[0] or 'nested too deeply'})") from None
    if not isinstance(raw, dict):
        raise UsageError(f"{config_path}: expected a mapping of settings")
    raw.update(overrides)  # `--key null` sets a field to None
    ours = {f.name for f in fields(ScriptArguments)}
    theirs = {f.name for f in fields(SFTConfig)}
    unknown = sorted(set(raw) - ours - theirs)
    if unknown:
        raise UsageError(f"{config_path}: unknown key(s) {', '.join(unknown)} (not fm5 or SFTConfig settings)")
    if "model_name_or_path" not in raw:
        raise UsageError(f"{config_path}: model_name_or_path is required")
    if not raw.get("output_dir"):
        raise UsageError(f"{config_path}: output_dir is required (in the config or --output_dir)")
    ours_given = {k: v for k, v in raw.items() if k in ours}
    _check_types(ours_given, config_path)
    script = ScriptArguments(**ours_given)
    if script.variant not in ("open", "closed", "mixed"):
        raise UsageError(f"{config_path}: variant must be open, closed or mixed, not {script.variant!r}")
    if script.document_schedule not in SCHEDULES:
        raise UsageError(f"{config_path}: document_schedule must be staged or mixed, not {script.document_schedule!r}")
    try:
        with warnings.catch_warnings():  # transformers' own deprecation notices about SFTConfig defaults
            warnings.simplefilter("ignore", FutureWarning)
            sft = SFTConfig(**{k: v for k, v in raw.items() if k in theirs})
    except (ValueError, TypeError) as err:
        raise UsageError(f"{config_path}: {str(err).splitlines()[0]}") from None
    if script.document_schedule == "mixed" and script.document_epochs:
        for key, value in (("document_epochs", script.document_epochs), ("num_train_epochs", sft.num_train_epochs)):
            if value != int(value) or value < 1:  # the mixed stage repeats rows: whole epochs only
                raise UsageError(f"{config_path}: {key} must be a whole number >= 1 with document_schedule mixed, "
                                 f"not {value}")
    return script, sft


_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "list[str]": (list,)}


def _check_types(values: dict, where: str) -> None:
    """fm5's own settings have the types their fields declare (`float | None` ...); numbers are finite and
    non-negative (every fm5 number is a size, a fraction, a count, a rate or a seed)."""
    declared = {f.name: f.type for f in fields(ScriptArguments)}
    for key, value in values.items():
        kinds = [k.strip() for k in declared[key].split("|")]
        if value is None and "None" in kinds:
            continue
        ok = any(isinstance(value, _TYPES[k]) and not (isinstance(value, bool) and k != "bool")
                 for k in kinds if k in _TYPES)
        if ok and isinstance(value, list):
            ok = bool(value) and all(isinstance(v, str) and v for v in value)
        if ok and isinstance(value, int) and not isinstance(value, bool):
            ok = 0 <= value < 2 ** 63
        elif ok and isinstance(value, float):
            ok = math.isfinite(value) and value >= 0
        if ok and isinstance(value, str):
            ok = value.isprintable() and value == value.encode("utf-8", "replace").decode("utf-8")
        if not ok:
            raise UsageError(f"{where}: field {key}: expected {declared[key].replace('|', 'or')}"
                             f"{' (finite, >= 0)' if 'int' in kinds or 'float' in kinds else ''}, got {value!r:.60}")


def resolve_model_path(name: str) -> str:
    if name.startswith("pkg:"):
        from harness_ext.models import package_dir

        folder = package_dir(name[4:])
        if folder is None:
            raise UsageError(f"model {name}: package {name[4:]} is not installed")
        return str(folder)
    return name


def check_model(script: ScriptArguments) -> str:
    """Fail fast, before loading weights: the model folder, the GGUF file and the LoRA target modules."""
    from harness_ext.models import gguf_path, module_names

    path = resolve_model_path(script.model_name_or_path)
    if script.gguf_file:
        gguf_path(path, script.gguf_file)
    elif not Path(path).exists() and os.environ.get("HF_HUB_OFFLINE") == "1" and "/" not in path:
        raise UsageError(f"model {path}: no such folder")
    try:
        model_type, names = module_names(path, script.gguf_file)
    except (OSError, ValueError) as err:
        raise UsageError(f"model {path}: {str(err).splitlines()[0]}") from None
    missing = [m for m in script.lora_target_modules if m not in names]
    if missing:
        raise UsageError(f"lora_target_modules {missing} not in {model_type} (has e.g. "
                         f"{sorted(n for n in names if n.endswith('_proj'))})")
    return path


def prepare_output_dir(output_dir: Path, resume: bool, overwrite: bool) -> Path | None:
    """Decide what to do with an existing output dir; returns the checkpoint to resume from, if any."""
    if not output_dir.exists() or not any(output_dir.iterdir()):
        return None
    if overwrite:
        shutil.rmtree(output_dir)
        return None
    if (output_dir / runs.RUN_FILE).is_file():
        raise UsageError(f"{output_dir}: holds a finished run ({runs.RUN_FILE}); pass --overwrite to replace it")
    if not resume:
        raise UsageError(f"{output_dir}: holds an unfinished run; pass --resume to continue it or --overwrite")
    done = runs.complete_checkpoints(output_dir)
    for partial in set(runs.checkpoints(output_dir)) - set(done):
        log.warning("removing incomplete checkpoint %s", partial)
        shutil.rmtree(partial)
    return done[-1] if done else None


# ------------------------------------------------------------------------------------------------------- data


def _full_length(tokenizer, row: dict, variant: str) -> int:
    messages = prompts.build_messages(row, variant) + [{"role": "assistant", "content": prompts.completion_text(row)}]
    return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                             **prompts.CHAT_TEMPLATE_KWARGS)["input_ids"])


def fit_passage(tokenizer, row: dict, variant: str, max_length: int | None) -> tuple[dict, bool]:
    """Shorten the passage (never the question or the answer) until the row fits max_length tokens."""
    if not max_length or variant != "open":
        return row, False
    excess = _full_length(tokenizer, row, variant) - max_length
    if excess <= 0:
        return row, False
    ids = tokenizer(row["passage"], add_special_tokens=False)["input_ids"]
    for _ in range(8):
        keep = max(len(ids) - excess - 4, 0)
        ids = ids[:keep]
        row = dict(row, passage=tokenizer.decode(ids))
        excess = _full_length(tokenizer, row, variant) - max_length
        if excess <= 0 or keep == 0:
            break
    if excess > 0:
        raise UsageError(f"row {row['id']}: question and answer alone exceed max_length={max_length}")
    return row, True


def build_rows(rows: list[dict], tokenizer, variant: str, max_length: int | None) -> tuple[list[dict], int]:
    """Conversational prompt/completion rows (TRL's format) from the shared prompt builder."""
    out, shortened = [], 0
    variants = ("open", "closed") if variant == "mixed" else (variant,)
    for row in rows:
        for v in variants:
            fitted, cut = fit_passage(tokenizer, row, v, max_length)
            shortened += cut
            out.append({
                "id": row["id"],
                "prompt": prompts.build_messages(fitted, v),
                "completion": [{"role": "assistant", "content": prompts.completion_text(fitted)}],
                "chat_template_kwargs": dict(prompts.CHAT_TEMPLATE_KWARGS),
            })
    return out, shortened


def prepared_rows(built: list[dict], texts: list[str], tokenizer) -> list[dict]:
    """Rows TRL takes as already prepared, `{"input_ids", "labels"}`, as TRL 1.16 prepares them itself: a
    prompt/completion row (build_rows) is its chat-template tokens with the prompt's labels -100; a document text is
    its tokens and the end token, every one a label. The mixed schedule needs this because TRL types a dataset by its
    first row, so chat rows and plain text share one dataset only once tokenized (tests/test_training.py checks
    these rows against TRL's own preparation)."""
    out = []
    for row in built:
        kwargs = row["chat_template_kwargs"]
        prompt = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True,
                                               return_dict=True, **kwargs)["input_ids"]
        full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True, return_dict=True,
                                             **kwargs)["input_ids"]
        n = next((i for i, (a, b) in enumerate(zip(prompt, full)) if a != b), min(len(prompt), len(full)))
        out.append({"input_ids": full, "labels": [-100] * n + full[n:]})
    for text in texts:
        ids = tokenizer(text=text if text.endswith(tokenizer.eos_token) else text + tokenizer.eos_token)["input_ids"]
        out.append({"input_ids": ids, "labels": list(ids)})
    return out


# ------------------------------------------------------------------------------------------------------ speed


@contextlib.contextmanager
def label_positions_only(enabled: bool = True):
    """Within the block, TRL's fused LM head projects only the label positions on CPU too; yields whether it does.
    TRL's own function is restored on leaving, so nothing outside `trainer.train()` sees the change.

    TRL 1.16 scores only the positions that carry a label where Triton runs (CUDA, XPU). Elsewhere it projects every
    position onto the full vocabulary and masks afterwards, so that XLA devices see one tile shape per batch; on a CPU
    that is a third of each training step (the prompt is most of a row). The compact path is exact on any eager
    device (same per-token values, scattered back into place), so on CPU we take it. It hooks TRL's private
    `trl.trainer.utils._use_triton` (pyproject pins trl to 1.16.x); `cpu_label_positions_only: false` turns it off,
    and fm5_run.json records whether it was on. Checked by tests/test_training.py::test_cpu_head_*.
    """
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if not enabled or original is None:
        if enabled:
            log.warning("TRL has no trl.trainer.utils._use_triton; the LM head scores every position on CPU")
        yield False
        return

    def compact(device) -> bool:
        return original(device) or device.type == "cpu"

    trl_utils._use_triton = compact
    try:
        yield True
    finally:
        trl_utils._use_triton = original


# ------------------------------------------------------------------------------------------------- provenance


def _git_commit() -> str | None:
    try:
        return subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, text=True,
                                       stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("fm5-eval", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "lm_eval"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


# ------------------------------------------------------------------------------------------------------ main


def document_rows(corpus: list[str], seen: list[dict], max_rows: int | None, seed: int) -> list[dict]:
    """The document stage's plain-text rows; ``max_rows`` subsamples them (sha256 rule), keeping every seen test
    passage, without which there is nothing for the probe to find."""
    rows = [{"id": f"doc-{hashlib.sha256(t.encode()).hexdigest()[:12]}", "text": t} for t in corpus]
    if max_rows and len(rows) > max_rows:
        must = {r["passage"].strip() for r in seen}
        keep = [r for r in rows if r["text"] in must]
        others = [r for r in rows if r["text"] not in must]
        picked = fm5_data.Split(max(max_rows - len(keep), 1), seed + 3).apply(others)[1] if others else []
        chosen = {r["id"] for r in keep + picked}
        rows = [r for r in rows if r["id"] in chosen]
    return [{"text": r["text"]} for r in rows]


def _withheld_passages(rows: list[dict], unseen: list[dict]) -> tuple[list[dict], int]:
    """QA rows whose passage shares a long span with an unseen passage lose that passage (they train closed-book),
    so that no training input holds unseen text."""
    spans = set().union(*(fm5_data.span_keys(r["passage"]) for r in unseen)) if unseen else set()
    out, n = [], 0
    for row in rows:
        if spans and row["passage"].strip() and fm5_data.shares_long_span(row["passage"], spans):
            row, n = dict(row, passage=""), n + 1
        out.append(row)
    return out, n


@dataclass
class Inputs:
    """Everything training reads, decided before any weight is loaded."""

    split: fm5_data.Split
    groups: dict  # data.Split.groups: train / test / seen / unseen rows
    train: list[dict]  # QA rows of the QA stage
    eval: list[dict]  # QA rows for eval loss
    corpus: fm5_data.Corpus | None  # the document corpus (None: no document stage)
    documents: list[dict]  # the document stage's rows ({"text": ...})
    passages_withheld: int  # QA rows whose passage was dropped for sharing a long span with an unseen passage


def prepare_inputs(script: ScriptArguments, rows: list[dict], documents: list[str]) -> Inputs:
    """The split and its seen/unseen halves; eval rows (eval loss, early stopping) from the training side; the QA
    rows; the document corpus. No held-out question or answer, no unseen passage (nor text sharing a long span with
    one) is in any of them (tests/test_training.py checks it on the shared file)."""
    split = fm5_data.Split(script.test_size, script.split_seed, script.seen_fraction)
    try:
        groups = split.groups(rows)
    except ValueError as err:
        raise UsageError(str(err)) from None
    train_rows, eval_rows = split.eval_split(groups["train"], script.eval_size)
    if script.max_train_rows and len(train_rows) > script.max_train_rows:
        train_rows = fm5_data.Split(script.max_train_rows, script.split_seed + 2).apply(train_rows)[1]
        log.info("subsampled %d training rows", len(train_rows))
    train_rows, n_withheld = _withheld_passages(train_rows, groups["unseen"])
    eval_rows, n_withheld_eval = _withheld_passages(eval_rows, groups["unseen"])
    corpus, doc_rows = None, []
    if script.document_epochs:
        corpus = fm5_data.document_corpus(rows, groups["unseen"], documents, script.document_passages)
        doc_rows = document_rows(corpus.texts, groups["seen"], script.max_document_rows, script.split_seed)
        log.info("document corpus: %d passages (%d withheld: unseen or sharing a %d-word span with one), %d "
                 "--document texts (%d dropped for a shared span); training on %d texts", corpus.passages,
                 corpus.passages_withheld, fm5_data.SPAN_WORDS, corpus.document_texts, corpus.document_dropped,
                 len(doc_rows))
        if not doc_rows:
            raise UsageError("document_epochs > 0 but the document corpus is empty")
    return Inputs(split, groups, train_rows, eval_rows, corpus, doc_rows, n_withheld + n_withheld_eval)


def _stage_config(sft, script: ScriptArguments, output_dir: Path):
    """The document stage's SFTConfig: the QA stage's settings, its own epochs, learning rate and output folder,
    plain-text rows (loss on every token), no eval set (eval loss is the QA rows'), one save at its end."""
    return dataclasses.replace(
        sft, output_dir=str(output_dir / runs.DOCUMENT_DIR), num_train_epochs=script.document_epochs,
        learning_rate=script.document_learning_rate or sft.learning_rate, eval_strategy="no", save_strategy="no",
        load_best_model_at_end=False, dataset_text_field="text", completion_only_loss=None, assistant_only_loss=False,
    )


@dataclass
class Checked:
    """Step 1's findings: what training reads and the model it loads."""

    data_path: Path
    rows: list[dict]
    documents: list[str]
    inputs: Inputs
    model_path: str


def check_inputs(script: ScriptArguments) -> Checked:
    """Step 1 of training, before touching the output dir or loading weights: the data, the split and its halves,
    the QA rows, the document corpus, the model's config and LoRA targets."""
    data_path = fm5_data.resolve_data_path(script.data)
    rows = fm5_data.load_qa(data_path)
    documents = fm5_data.load_documents(script.document) if script.document else []
    inputs = prepare_inputs(script, rows, documents)  # the split, its seen/unseen halves, QA rows, the corpus
    return Checked(data_path, rows, documents, inputs, check_model(script))


def check(script: ScriptArguments, sft) -> dict:
    """`fm5 train --check`: step 1 alone, and what training would do with output_dir; trains nothing."""
    checked, output_dir = check_inputs(script), Path(sft.output_dir)
    state = "empty"
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"{output_dir}: output_dir is a file")
    if output_dir.is_dir() and any(output_dir.iterdir()):
        state = "finished run" if (output_dir / runs.RUN_FILE).is_file() else "unfinished run"
    inputs = checked.inputs
    return {"data": str(checked.data_path), "rows": len(checked.rows), "train": len(inputs.train),
            "eval": len(inputs.eval), "test_seen": len(inputs.groups["seen"]),
            "test_unseen": len(inputs.groups["unseen"]), "document_texts": len(inputs.documents),
            "document_schedule": script.document_schedule if inputs.documents else None,
            "model": checked.model_path, "output_dir": str(output_dir), "output_dir_holds": state}


def train(script: ScriptArguments, sft, resume: bool = False, overwrite: bool = False) -> Path:
    # 1. check everything before touching the output dir or loading weights
    checked = check_inputs(script)
    data_path, rows, documents, inputs, model_path = (checked.data_path, checked.rows, checked.documents,
                                                      checked.inputs, checked.model_path)
    output_dir = Path(sft.output_dir)
    if int(os.environ.get("RANK", "0")) == 0:
        resume_from = prepare_output_dir(output_dir, resume, overwrite)
    else:  # data-parallel workers: rank 0 alone removes or refuses; the others only look
        done = runs.complete_checkpoints(output_dir) if resume and not overwrite and output_dir.is_dir() else []
        resume_from = done[-1] if done else None

    import torch
    from datasets import Dataset
    from peft import LoraConfig, PeftModel
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

    from harness_ext.models import load_base

    # On CUDA, rows of many lengths fragment the caching allocator: on an H100 (Llama-3.2-1B shape, batch 16) steps
    # stalled for 2-8 s at new shapes without this; runs with it had no stalls and 19.3k real tokens/s (12.3k without).
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    started = time.time()
    # 2. what training reads (decided in step 1)
    split, groups, corpus, doc_ds = inputs.split, inputs.groups, inputs.corpus, inputs.documents
    train_rows, eval_rows = inputs.train, inputs.eval

    # 3. the base model (GGUF: dequantized once, then loaded from the cache)
    model, tokenizer = load_base(model_path, script.gguf_file, dtype=script.dtype,
                                 attn_implementation=script.attn_implementation)
    model.config.use_cache = False

    # 4. prompt/completion rows from the shared prompt builder; long passages shortened, never the answer
    n_withheld = inputs.passages_withheld
    train_ds, n_short = build_rows(train_rows, tokenizer, script.variant, sft.max_length)
    n_train = len(train_ds)
    eval_ds, n_short_eval = build_rows(eval_rows, tokenizer, script.variant, sft.max_length)
    if n_short or n_short_eval:
        log.warning("shortened the passage of %d training and %d eval rows to fit max_length=%s",
                    n_short, n_short_eval, sft.max_length)
    fitted_length = sft.max_length
    if sft.padding_free and not sft.packing:
        sft.max_length = None  # the rows already fit; TRL does not cut padding-free rows and refuses a limit

    lora = LoraConfig(r=script.lora_r, lora_alpha=script.lora_alpha, lora_dropout=script.lora_dropout,
                      target_modules=list(script.lora_target_modules), bias="none", task_type="CAUSAL_LM")
    stages = []

    # 5. the document stage: causal-LM loss on every token of the corpus, into the LoRA adapter (mixed schedule: the
    #    texts join the QA rows in step 6 instead)
    mixed = script.document_schedule == "mixed" and bool(doc_ds)
    doc_dir = output_dir / runs.DOCUMENT_DIR
    if doc_ds and not mixed and resume and (doc_dir / runs.STAGE_FILE).is_file():
        model = PeftModel.from_pretrained(model, str(doc_dir), is_trainable=True)  # done before the interruption
        stages.append(json.loads((doc_dir / runs.STAGE_FILE).read_text()))
        lora = None
    elif doc_ds and not mixed:
        doc_trainer = SFTTrainer(model=model, args=_stage_config(sft, script, output_dir), processing_class=tokenizer,
                                 peft_config=lora, train_dataset=Dataset.from_list(doc_ds))
        t0 = time.time()
        with label_positions_only(script.cpu_label_positions_only) as compact_head:
            doc_result = doc_trainer.train()
        doc_trainer.save_model(str(doc_dir))
        model, lora = doc_trainer.model, None  # the QA stage continues this adapter
        stage = {"name": "document", "texts": len(doc_ds), "epochs": script.document_epochs,
                 "learning_rate": doc_trainer.args.learning_rate, "global_step": doc_trainer.state.global_step,
                 "tokens_seen": doc_trainer.state.num_input_tokens_seen or None,
                 "train_loss": doc_result.metrics.get("train_loss"), "wall_time_s": round(time.time() - t0, 1),
                 "adapter": str(doc_dir)}
        stages.append(stage)
        if doc_trainer.is_world_process_zero():
            write_atomic(doc_dir / runs.STAGE_FILE, json.dumps(stage, indent=1) + "\n")

    # 6. the QA stage (the same adapter when a document stage ran), or the mixed stage: every QA row
    #    num_train_epochs times and every document text document_epochs times in one shuffled pass
    answer_tokens = None
    if mixed:
        qa_epochs = int(sft.num_train_epochs)
        qa_prepared = prepared_rows(train_ds, [], tokenizer)
        answer_tokens = sum(sum(t != -100 for t in r["labels"]) for r in qa_prepared)
        train_ds = qa_prepared * qa_epochs + prepared_rows([], [d["text"] for d in doc_ds], tokenizer) * int(
            script.document_epochs)
        eval_ds = prepared_rows(eval_ds, [], tokenizer)
        sft = dataclasses.replace(sft, num_train_epochs=1,
                                  learning_rate=script.document_learning_rate or sft.learning_rate)
    callbacks = []
    if script.early_stopping_patience and eval_ds:
        callbacks.append(EarlyStoppingCallback(script.early_stopping_patience, script.early_stopping_threshold))
    if not eval_ds:
        sft.eval_strategy, sft.load_best_model_at_end = "no", False
    trainer = SFTTrainer(
        model=model, args=sft, processing_class=tokenizer, peft_config=lora, callbacks=callbacks,
        train_dataset=Dataset.from_list(train_ds), eval_dataset=Dataset.from_list(eval_ds) if eval_ds else None,
    )
    with label_positions_only(script.cpu_label_positions_only) as compact_head:
        result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    trainer.save_model(str(output_dir))
    trainer.save_state()
    last = {"name": "qa", "rows": n_train, "epochs": sft.num_train_epochs}
    if mixed:
        last = {"name": "mixed", "texts": len(doc_ds), "document_epochs": script.document_epochs, "rows": n_train,
                "qa_epochs": qa_epochs, "sequences": len(trainer.train_dataset)}
    stages.append({**last, "learning_rate": sft.learning_rate, "global_step": trainer.state.global_step})
    if not trainer.is_world_process_zero():
        return output_dir
    if answer_tokens is None and "labels" in trainer.train_dataset.column_names:
        answer_tokens = sum(sum(1 for t in ex["labels"] if t != -100) for ex in trainer.train_dataset)
    run = {
        "base_model": {"model_name_or_path": script.model_name_or_path, "resolved": model_path,
                       "gguf_file": script.gguf_file, "dtype": script.dtype},
        "adapter": json.loads((output_dir / "adapter_config.json").read_text()),
        "config": {"fm5": asdict(script), "sft": sft.to_dict()},
        "data": {"path": str(data_path.resolve()), "sha256": fm5_data.file_sha256(data_path), "rows": len(rows)},
        "split": {**split.as_dict(), "eval_size": script.eval_size, "train_ids": sorted(r["id"] for r in train_rows),
                  "eval_ids": sorted(r["id"] for r in eval_rows), "test_ids": sorted(r["id"] for r in groups["test"]),
                  "test_seen_ids": sorted(r["id"] for r in groups["seen"]),
                  "test_unseen_ids": sorted(r["id"] for r in groups["unseen"])},
        "stages": stages,
        "corpus": None if corpus is None else {
            **corpus.as_dict(), "trained_texts": len(doc_ds),
            "document": None if not script.document else {
                "path": str(Path(script.document).resolve()), "sha256": fm5_data.file_sha256(script.document),
                "texts": len(documents)}},
        "rows": {"variant": script.variant, "train": n_train, "eval": len(eval_ds), "max_length": fitted_length,
                 "passages_shortened": n_short + n_short_eval,
                 "passages_withheld_unseen_span": n_withheld},
        "git_commit": _git_commit(),
        "versions": _versions(),
        "device": str(trainer.args.device),
        "world_size": trainer.args.world_size,
        "wall_time_s": round(time.time() - started, 1),
        "train_runtime_s": result.metrics.get("train_runtime"),
        "tokens_seen": trainer.state.num_input_tokens_seen or None,
        "answer_tokens_per_epoch": answer_tokens,
        "global_step": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "resumed_from": str(resume_from) if resume_from else None,
        "torch_threads": torch.get_num_threads(),
        # the one change made to a library's behaviour, in effect during trainer.train() only (label_positions_only)
        "patches": {"trl_use_triton_cpu_label_positions_only": compact_head and trainer.args.device.type == "cpu"},
    }
    write_atomic(output_dir / runs.RUN_FILE, json.dumps(run, indent=1, sort_keys=True, default=str) + "\n")  # written last: its presence marks a finished run
    return output_dir


def add_arguments(p) -> None:
    p.add_argument("--config", required=True, help="YAML config (training/configs/*.yaml)")
    p.add_argument("--data", help="QA file; default: the config's data, else $FM5_DATA")
    p.add_argument("--output_dir", help="where the adapter and checkpoints go")
    p.add_argument("--document", help="JSONL with a `text` field added to the document stage's corpus (e.g. "
                                      "../shared/fm5/fm5_chunks.jsonl); texts sharing a 13-word span with an unseen "
                                      "test passage are dropped")
    p.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in output_dir")
    p.add_argument("--check", action="store_true",
                   help="check the config, the data, the split and the model's config, print the plan, train nothing")


def main(args, extra: list[str] | None = None) -> int:
    """Entry point of `fm5 train` and of `python -m training.sft`: the config, then --key value overrides."""
    check_only = getattr(args, "check", False)
    logging.basicConfig(level=logging.WARNING if check_only else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s")
    overrides = _parse_overrides(extra or [])
    given = {"data": args.data, "output_dir": args.output_dir, "document": getattr(args, "document", None)}
    overrides.update({k: v for k, v in given.items() if v is not None})
    script, sft = load_config(args.config, overrides)
    if check_only:
        print(json.dumps(check(script, sft), indent=1))
        return 0
    out = train(script, sft, resume=args.resume, overwrite=args.overwrite)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"adapter written to {out}")
    return 0


if __name__ == "__main__":  # accelerate launch -m training.sft / torchrun -m training.sft
    import argparse

    from harness_ext.errors import Fm5Error

    parser = argparse.ArgumentParser(prog="python -m training.sft", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    try:
        sys.exit(main(*parser.parse_known_args()))
    except Fm5Error as err:
        print(f"fm5 train: error: {err}", file=sys.stderr)
        sys.exit(2)
