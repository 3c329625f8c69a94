"""`fm5 train`'s settings: fm5's own fields (ScriptArguments) and TRL's SFTConfig, from a YAML file overridden by
`--key value` on the command line; every key and type checked before anything runs, the model's config too."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path

from harness_ext import data as fm5_data
from harness_ext.errors import UsageError
from harness_ext.files import load_yaml, number, read_yaml
from training.views import VIEWS

CONFIGS = Path(__file__).resolve().parent / "configs"
CPU_CONFIG = CONFIGS / "smollm2_cpu.yaml"  # the embedded default, frozen by the recipe grid
STAGED_CONFIG = CONFIGS / "smollm2_cpu_staged.yaml"  # the one before it (the grid's control; fm5 demo, small)
# document_schedule: the document stage before the QA stage, both in one, or QA first (training.stages)
SCHEDULES = ("staged", "mixed", "pit")


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
    qa: bool = field(default=True, metadata={
        "help": "false (`fm5 train --no-qa`): no QA file, no QA stage; the --document file's texts are split into "
                "train / seen / unseen (the same sha256 rules, test_size and seen_fraction) and the document stage "
                "trains on the train and seen texts; the passage-continuation probe (fm5_doc_mc) evaluates it"})
    document_passages: bool = field(default=True, metadata={
        "help": "put the QA file's passages (minus the unseen ones) into the document corpus"})
    document_epochs: float = field(default=0.0, metadata={"help": "epochs of the document stage (0: no stage)"})
    document_learning_rate: float | None = field(default=None, metadata={
        "help": "learning rate of the document stage (default: learning_rate)"})
    document_schedule: str = field(default="staged", metadata={
        "help": "staged: the document stage, then the QA stage (one adapter, two trainers); mixed: one stage over the "
                "document texts (each document_epochs times) and the QA rows (each num_train_epochs times) shuffled "
                "together, at document_learning_rate; the same rows and steps, interleaved; pit (QA first, Jiang et "
                "al. 2024): the QA rows alone, then the same rows with their own passages (num_train_epochs each, "
                "learning_rate), then the document texts (document_epochs) with a pit_replay share of the QA rows "
                "per pass, at document_learning_rate"})
    pit_replay: float = field(default=0.1, metadata={
        "help": "pit schedule: the share of the QA rows replayed with each pass over the document texts"})
    document_views: str = field(default="none", metadata={
        "help": "none: every pass of the document stage shows each text as written; shuffle: the first pass as "
                "written, every later pass its sentences in a new seeded order (training.views; whole "
                "document_epochs, no packing)"})
    document_headings: bool = field(default=False, metadata={
        "help": "prefix every sentence of the document texts with the text's heading, the chapter title of FM 5-0's "
                "running page header (training.views)"})
    document_questions: int = field(default=0, metadata={
        "help": "study questions per document text, built by rule from the texts training may read (definitions, "
                "their reverse, fill-in-the-blank; harness_ext.data.study), decontaminated, trained closed-book with "
                "the QA rows; 0: none"})
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
    primary_comparison: str = field(default="final:fm5_qa_mc_closed:margin", metadata={
        "help": "the one comparison the report's verdict is about, MODEL:TASK:METRIC (model: final, document or "
                "checkpoint-N, against the base); declared in fm5_plan.json before training starts. Every other "
                "model x metric is exploratory"})
    stored_comparison: str = field(default="final:fm5_doc_mc:margin", metadata={
        "help": "the verdict's first line, MODEL:TASK:METRIC on the passage-continuation probe (was the text "
                "stored?); tested before primary_comparison (fixed sequence), declared with it in fm5_plan.json. "
                "Used when the report has the probe's results"})
    early_stopping_patience: int | None = field(default=None, metadata={"help": "evaluations without improvement"})
    early_stopping_threshold: float = field(default=0.0, metadata={"help": "minimum eval-loss improvement"})


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


def parse_overrides(extra: list[str]) -> dict:
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
    from trl import SFTConfig

    raw = read_yaml(config_path, UsageError, "training config") or {}
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
    from harness_ext.claims import Primary

    try:
        Primary.parse(script.primary_comparison, f"{config_path}: field primary_comparison")
        Primary.parse(script.stored_comparison, f"{config_path}: field stored_comparison")
    except ValueError as err:
        raise UsageError(str(err)) from None
    if script.document_schedule not in SCHEDULES:
        raise UsageError(f"{config_path}: document_schedule must be {', '.join(SCHEDULES)}, not "
                         f"{script.document_schedule!r}")
    try:
        with warnings.catch_warnings():  # transformers' own deprecation notices about SFTConfig defaults
            warnings.simplefilter("ignore", FutureWarning)
            sft = SFTConfig(**{k: v for k, v in raw.items() if k in theirs})
    except (ValueError, TypeError, OverflowError) as err:  # e.g. logging_steps: .inf
        raise UsageError(f"{config_path}: {str(err).splitlines()[0]}") from None
    if not script.qa and not (script.document and script.document_epochs):
        raise UsageError(f"{config_path}: qa: false (--no-qa) trains on a document file alone: give --document FILE "
                         f"and document_epochs > 0")
    if script.document_views not in VIEWS:
        raise UsageError(f"{config_path}: document_views must be {' or '.join(VIEWS)}, not {script.document_views!r}")
    if script.document_questions and not (script.qa and script.document_epochs):
        raise UsageError(f"{config_path}: document_questions needs a QA file and document_epochs > 0 (they are built "
                         f"from the document stage's texts and trained with the QA rows)")
    views = script.document_views != "none" or script.document_headings
    if views and sft.packing:
        raise UsageError(f"{config_path}: document_views / document_headings need packing: false (two views of one "
                         f"text must not share a sequence)")
    whole = []  # the mixed stage and the views repeat rows: whole epochs only
    if (script.document_schedule in ("mixed", "pit") or not script.qa) and script.document_epochs:
        whole = [("document_epochs", script.document_epochs), ("num_train_epochs", sft.num_train_epochs)]
    elif views and script.document_epochs:
        whole = [("document_epochs", script.document_epochs)]
    for key, value in whole:
        if value != int(value) or value < 1:
            raise UsageError(f"{config_path}: {key} must be a whole number >= 1 with document_schedule mixed "
                             f"or pit, qa: false or document views, not {value}")
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
        if ok and isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number(value, key, UsageError)
            except UsageError:
                ok = False
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
