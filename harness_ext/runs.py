"""The layout of a training run's output_dir, in one place: training writes it; the sweep, the results reader and
the report read it.

    output_dir/
      adapter_config.json, adapter_model.safetensors   the final adapter
      checkpoint-<step>/                               per-epoch checkpoints (TRL / transformers names)
      document/ (+ fm5_stage.json, written last)       the document stage's adapter (staged schedule)
      trainer_state.json                               the last stage's log history (QA, or the mixed stage)
      fm5_run.json (written last)                      provenance; its presence marks a finished run
"""

from __future__ import annotations

import math
from pathlib import Path

from harness_ext import files
from harness_ext.errors import Fm5Error

RUN_FILE = "fm5_run.json"
STATE_FILE = "trainer_state.json"
DOCUMENT_DIR = "document"  # the document stage's adapter, inside output_dir
STAGE_FILE = "fm5_stage.json"  # written last in output_dir/document: the stage is complete
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


def read_run(output_dir: Path) -> dict | None:
    """fm5_run.json of a training output_dir (None if absent), its id lists and stages checked."""
    path = Path(output_dir) / RUN_FILE
    if not path.is_file():
        return None
    run = files.read_json(path, RunError, allow_nan=False)
    for key in ("base_model", "adapter", "data", "split", "corpus"):
        if run.get(key) is not None and not isinstance(run[key], dict):
            raise RunError(f"{path}: field {key}: expected an object")
        if key != "corpus" and run.get(key) is None:
            run[key] = {}  # readers may take run["data"].get(...) without a check
    for key, value in (("data.sha256", run["data"].get("sha256")), ("git_commit", run.get("git_commit")),
                       ("base_model.model_name_or_path", run["base_model"].get("model_name_or_path")),
                       ("base_model.gguf_file", run["base_model"].get("gguf_file"))):
        if value is not None and not isinstance(value, str):
            raise RunError(f"{path}: field {key}: expected text")
    for key in ID_LISTS:
        ids = run["split"].get(key, [])
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise RunError(f"{path}: field split.{key}: expected a list of ids (strings)")
    stages = run.get("stages", [])
    if not isinstance(stages, list) or not all(isinstance(s, dict) for s in stages):
        raise RunError(f"{path}: field stages: expected a list of objects")
    for key in ("wall_time_s", "tokens_seen", "global_step"):
        value = run.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value)):
            raise RunError(f"{path}: field {key}: expected a number")
    return run


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


def run_of_adapter(adapter: str | Path) -> dict | None:
    """fm5_run.json of the training run an adapter came from: next to it (the final adapter) or one folder up (a
    checkpoint or the document stage's adapter)."""
    adapter = Path(str(adapter))
    for folder in (adapter, adapter.parent):
        if (folder / RUN_FILE).is_file():
            return read_run(folder)
    return None
