"""The layout of a training run's output_dir, in one place: training writes it; the sweep, the results reader and
the report read it.

    output_dir/
      adapter_config.json, adapter_model.safetensors   the final adapter
      checkpoint-<step>/                               per-epoch checkpoints (TRL / transformers names)
      document/ (+ fm5_stage.json, written last)       the document stage's adapter (staged schedule)
      trainer_state.json                               the last stage's log history (QA, or the mixed stage)
      fm5_plan.json (written first)                    the declared comparison and the split, before any step
      fm5_run.json (written last)                      provenance; its presence marks a finished run
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness_ext import files
from harness_ext.errors import Fm5Error, UsageError

RUN_FILE = "fm5_run.json"
STATE_FILE = "trainer_state.json"
DOCUMENT_DIR = "document"  # the document stage's adapter, inside output_dir
STAGE_FILE = "fm5_stage.json"  # written last in output_dir/document: the stage is complete
PLAN_FILE = "fm5_plan.json"  # written before training starts: the declared comparison and the split
CHECKPOINT_PREFIX = "checkpoint-"
CHECKPOINT_FILES = ("adapter_model.safetensors", "adapter_config.json", STATE_FILE, "optimizer.pt", "scheduler.pt")
# fm5_run.json fields that hold id lists (the split), read by the report and the knowledge section
ID_LISTS = ("train_ids", "eval_ids", "test_ids", "test_seen_ids", "test_unseen_ids")


class RunError(Fm5Error):
    """A training output folder that cannot be used; one line naming the file and field."""


def checkpoint_step(name: str) -> int | None:
    """The step of a `checkpoint-<step>` name (a folder name or a label ending in it), else None."""
    head, sep, tail = str(name).rpartition(CHECKPOINT_PREFIX)
    if not sep or (head and not head.endswith("/")) or not tail.isascii() or not tail.isdigit():
        return None
    return int(tail)


def checkpoints(output_dir: Path) -> list[Path]:
    """The checkpoint folders of a run, by step."""
    found = [p for p in Path(output_dir).glob(CHECKPOINT_PREFIX + "*")
             if p.is_dir() and checkpoint_step(p.name) is not None]
    return sorted(found, key=lambda p: checkpoint_step(p.name))


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """Checkpoints that hold every file a resume needs, by step."""
    return [p for p in checkpoints(output_dir) if all((p / f).is_file() for f in CHECKPOINT_FILES)]


def document_adapter(output_dir: Path) -> Path | None:
    folder = Path(output_dir) / DOCUMENT_DIR
    return folder if (folder / "adapter_config.json").is_file() else None


def is_training_run(path: Path) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / STATE_FILE).is_file() or (path / RUN_FILE).is_file())


def adapter_label(adapter: str | Path) -> str:
    """A model's name in reports: `run/checkpoint-N`, `run/document` or the adapter folder's name."""
    p = Path(str(adapter))
    if checkpoint_step(p.name) is not None or p.name == DOCUMENT_DIR:
        return f"{p.parent.name}/{p.name}"
    return p.name


def label_run(label: str) -> str:
    """The training run a label from adapter_label belongs to (`run` for `run/checkpoint-N`, `run/document`, `run`)."""
    return label.split("/")[0]


def label_is_document(label: str) -> bool:
    return label.endswith("/" + DOCUMENT_DIR)


def label_role(label: str) -> str:
    """A model's place in its training run: ``document``, ``checkpoint-N`` or ``final`` (the adapter itself)."""
    if label_is_document(label):
        return DOCUMENT_DIR
    step = checkpoint_step(label)
    return "final" if step is None else f"{CHECKPOINT_PREFIX}{step}"


@dataclass(frozen=True)
class SplitRecord:
    """Which rows the run held out and read (fm5_run.json "split")."""

    test_size: float | None = None
    seed: int | None = None
    seen_fraction: float | None = None
    eval_size: float | None = None
    rule: str | None = None
    seen_rule: str | None = None
    train_ids: tuple[str, ...] = ()
    eval_ids: tuple[str, ...] = ()
    test_ids: tuple[str, ...] = ()
    test_seen_ids: tuple[str, ...] = ()
    test_unseen_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunRecord:
    """fm5_run.json: a finished training run's provenance. Training builds it and writes it last (``write``);
    ``read_run`` returns it, checked; the report, the gate and the sweep read its fields. The JSON keeps these
    names; ``adapter`` is PEFT's adapter_config.json, ``config`` the fm5 and SFT settings, ``corpus`` the document
    corpus (None: no document stage)."""

    base_model: str | None = None  # model_name_or_path as given
    base_resolved: str | None = None
    gguf_file: str | None = None
    dtype: str | None = None
    adapter: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    data_path: str | None = None
    data_sha256: str | None = None
    data_rows: int | None = None
    split: SplitRecord = SplitRecord()
    stages: tuple[dict, ...] = ()
    corpus: dict | None = None
    rows: dict = field(default_factory=dict)
    git_commit: str | None = None
    versions: dict = field(default_factory=dict)
    device: str | None = None
    world_size: int | None = None
    wall_time_s: float | None = None
    train_runtime_s: float | None = None
    tokens_seen: int | None = None
    answer_tokens_per_epoch: int | None = None
    global_step: int | None = None
    best_checkpoint: str | None = None
    resumed_from: str | None = None
    torch_threads: int | None = None
    patches: dict = field(default_factory=dict)
    decontamination: dict = field(default_factory=dict)  # data.TrainingInputs.decontamination
    primary: str | None = None  # the declared comparison, MODEL:TASK:METRIC (claims.Primary)
    stored: str | None = None  # the declared continuation-probe comparison (the verdict's first line)
    declared_at: str | None = None  # when it was declared: before the first training step (PLAN_FILE)

    @property
    def document_only(self) -> bool:
        """Trained on a document file alone (`fm5 train --no-qa`): ``data_path`` is that file, the split's ids are its
        texts' (``data.text_rows``)."""
        return (self.config.get("fm5") or {}).get("qa") is False

    @property
    def lora(self) -> tuple:
        """(r, alpha, target modules) of the adapter."""
        return self.adapter.get("r"), self.adapter.get("lora_alpha"), self.adapter.get("target_modules")

    def as_json(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k not in _NESTED}
        out["base_model"] = {"model_name_or_path": self.base_model, "resolved": self.base_resolved,
                             "gguf_file": self.gguf_file, "dtype": self.dtype}
        out["data"] = {"path": self.data_path, "sha256": self.data_sha256, "rows": self.data_rows}
        out["split"] = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.split).items()}
        out["stages"] = list(self.stages)
        return out

    def write(self, output_dir: Path) -> None:
        """Written last: its presence marks a finished run."""
        files.write_atomic(Path(output_dir) / RUN_FILE,
                           json.dumps(self.as_json(), indent=1, sort_keys=True, default=str) + "\n")


_NESTED = ("base_model", "base_resolved", "gguf_file", "dtype", "data_path", "data_sha256", "data_rows", "split",
           "stages")


def _section(raw: dict, key: str, path: Path) -> dict:
    value = raw.get(key)
    if value is not None and not isinstance(value, dict):
        raise RunError(f"{path}: field {key}: expected an object")
    return value or {}


def _text_field(value, key: str, path: Path) -> str | None:
    if value is not None and not isinstance(value, str):
        raise RunError(f"{path}: field {key}: expected text")
    return value


def _optional(value, kind: type | tuple = str):
    """A field kept only when it has the expected type (provenance that no reader relies on): else None."""
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def read_run(output_dir: Path) -> RunRecord | None:
    """fm5_run.json of a training output_dir (None if absent), checked: one line naming the file and field."""
    path = Path(output_dir) / RUN_FILE
    if not path.is_file():
        return None
    raw = files.read_json(path, RunError, allow_nan=False)
    base, data, split = (_section(raw, k, path) for k in ("base_model", "data", "split"))
    adapter, corpus = _section(raw, "adapter", path), _section(raw, "corpus", path) or None
    ids = {}
    for key in ID_LISTS:
        value = split.get(key, [])
        if not isinstance(value, list) or not all(isinstance(i, str) for i in value):
            raise RunError(f"{path}: field split.{key}: expected a list of ids (strings)")
        ids[key] = tuple(value)
    settings = {}
    for key in ("test_size", "seed", "seen_fraction", "eval_size"):
        if split.get(key) is not None:
            settings[key] = files.number(split[key], f"{path}: field split.{key}", RunError,
                                         integer=key == "seed")
    stages = raw.get("stages", [])
    if not isinstance(stages, list) or not all(isinstance(s, dict) for s in stages):
        raise RunError(f"{path}: field stages: expected a list of objects")
    numbers = {}
    for key in ("wall_time_s", "tokens_seen", "global_step"):
        if raw.get(key) is not None:
            numbers[key] = files.number(raw[key], f"{path}: field {key}", RunError, minimum=None)
    return RunRecord(
        base_model=_text_field(base.get("model_name_or_path"), "base_model.model_name_or_path", path),
        base_resolved=_optional(base.get("resolved")),
        gguf_file=_text_field(base.get("gguf_file"), "base_model.gguf_file", path),
        dtype=_optional(base.get("dtype")),
        adapter=adapter, config=_section(raw, "config", path),
        data_path=_optional(data.get("path")),
        data_sha256=_text_field(data.get("sha256"), "data.sha256", path),
        data_rows=_optional(data.get("rows"), int),
        split=SplitRecord(**settings, rule=_optional(split.get("rule")), seen_rule=_optional(split.get("seen_rule")),
                          **ids),
        stages=tuple(stages), corpus=corpus, rows=_section(raw, "rows", path),
        git_commit=_text_field(raw.get("git_commit"), "git_commit", path),
        versions=_section(raw, "versions", path), patches=_section(raw, "patches", path),
        decontamination=_section(raw, "decontamination", path),
        primary=_text_field(raw.get("primary"), "primary", path), stored=_text_field(raw.get("stored"), "stored", path),
        **{k: _optional(raw.get(k)) for k in ("device", "best_checkpoint", "resumed_from", "declared_at")},
        **{k: _optional(raw.get(k), (int, float))
           for k in ("world_size", "train_runtime_s", "answer_tokens_per_epoch", "torch_threads")},
        **numbers,
    )


def write_plan(output_dir: Path, plan: dict) -> None:
    """The pre-registration of a run, written before its first training step (kept on resume)."""
    path = Path(output_dir) / PLAN_FILE
    if not path.is_file():
        files.write_atomic(path, json.dumps(plan, indent=1, sort_keys=True) + "\n")


def read_plan(output_dir: Path) -> dict | None:
    path = Path(output_dir) / PLAN_FILE
    return files.read_json(path, RunError) if path.is_file() else None


def read_stage(folder: Path) -> dict:
    """The stage record (fm5_stage.json) of a finished document stage."""
    return files.read_json(Path(folder) / STAGE_FILE, RunError)


def write_stage(folder: Path, stage: dict) -> None:
    files.write_atomic(Path(folder) / STAGE_FILE, json.dumps(stage, indent=1) + "\n")


def read_state(output_dir: Path) -> dict | None:
    """trainer_state.json of a training output_dir (None if absent), its log history checked."""
    path = Path(output_dir) / STATE_FILE
    if not path.is_file():
        return None
    state = files.read_json(path, RunError, allow_nan=False)
    history = state.get("log_history", [])
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise RunError(f"{path}: field log_history: expected a list of objects")
    return state


def run_of_adapter(adapter: str | Path) -> RunRecord | None:
    """fm5_run.json of the training run an adapter came from: next to it (the final adapter) or one folder up (a
    checkpoint or the document stage's adapter)."""
    adapter = Path(str(adapter))
    for folder in (adapter, adapter.parent):
        if (folder / RUN_FILE).is_file():
            return read_run(folder)
    return None


# ---------------------------------------------------------------------------- the split a run is evaluated on


SPLIT_KEYS = {"test_size": "fm5_test_size", "seed": "fm5_split_seed", "seen_fraction": "fm5_seen_fraction"}


def split_of_runs(adapters: list[Path], metadata: dict) -> tuple[dict, str]:
    """The split to evaluate training runs on: the one their fm5_run.json records (test size, seed, seen fraction),
    unless --metadata names it; refused (one line) when it would score a row a run trained on. Returns the task
    metadata and a line saying where the split came from."""
    from harness_ext import data

    records = {}
    for adapter in adapters:
        record = run_of_adapter(adapter)
        if record is not None and record.split.test_size is not None:
            records[str(adapter_label(adapter)).split("/")[0]] = record
    if not records:
        return metadata, ""
    given = {k for k, key in SPLIT_KEYS.items() if key in metadata} | ({"seed"} if "fm5_seed" in metadata else set())
    settings = {(r.split.test_size, r.split.seed, r.split.seen_fraction) for r in records.values()}
    note = "split: as given in --metadata"
    if not given:
        if len(settings) > 1:
            raise UsageError(f"the training runs {', '.join(sorted(records))} were trained on different splits "
                             f"{sorted(settings)}: evaluate them apart, or name one with --metadata fm5_test_size / "
                             f"fm5_split_seed / fm5_seen_fraction")
        (test_size, seed, seen_fraction), = settings
        metadata = {**metadata, "fm5_test_size": test_size, "fm5_split_seed": seed,
                    "fm5_seen_fraction": seen_fraction}
        note = (f"split from {', '.join(sorted(records))}'s fm5_run.json: test_size {test_size}, split seed {seed}, "
                f"seen fraction {seen_fraction}")
    documents = {r.data_path for r in records.values() if r.document_only}
    if documents and "fm5_document" not in metadata:
        if len(documents) > 1 or len(documents) < len(records):
            raise UsageError("the training runs were trained on different files: evaluate them apart")
        if "fm5_data" in metadata:  # its split is over the document's texts: a QA file's passages may be trained ones
            raise UsageError(f"{', '.join(sorted(records))}: trained on a document file alone "
                             f"({next(iter(documents))}); evaluate it with --tasks fm5_doc_mc and without --data")
        metadata = {**metadata, "fm5_document": next(iter(documents))}
        note += f"; document file from fm5_run.json: {metadata['fm5_document']}"
    rows = data.text_rows(data.load_documents(data.existing_file(metadata["fm5_document"], "fm5_document"))) \
        if metadata.get("fm5_document") else data.load_qa(data.resolve_data_path(metadata.get("fm5_data")))
    split = data.Split(float(metadata.get("fm5_test_size", data.DEFAULT_TEST_SIZE)),
                       data.split_seed(metadata.get("fm5_split_seed"), metadata.get("fm5_seed")),
                       float(metadata.get("fm5_seen_fraction", data.DEFAULT_SEEN_FRACTION)))
    try:
        test, unseen = split.test_ids(rows), split.groups(rows).unseen_ids
    except ValueError as err:
        raise UsageError(str(err)) from None
    for name, record in sorted(records.items()):
        trained = test & (set(record.split.train_ids) | set(record.split.eval_ids))
        if metadata.get("fm5_document"):
            if not record.document_only:
                raise UsageError(f"{name}: trained with a QA file, whose split says nothing about the texts of "
                                 f"fm5_document; evaluate fm5_doc_mc on the QA file's passages (drop fm5_document)")
            trained = unseen - set(record.split.test_unseen_ids)  # every text but its unseen ones was trained on
        if trained:
            raise UsageError(f"{name}: this split would score {len(trained)} row(s) the run trained on (e.g. "
                             f"{', '.join(sorted(trained)[:3])}); evaluate it on the split in its fm5_run.json")
    return metadata, note
