"""What fm5_run.json records of a training run (harness_ext.run_layout.RunRecord): the config, the base model, the data
and its split, the corpus, the stages, versions and the git commit."""

from __future__ import annotations

import subprocess
from dataclasses import asdict
from pathlib import Path

from harness_ext import data as fm5_data
from harness_ext import files, run_layout


def git_commit() -> str | None:
    try:
        return subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, text=True,
                                       stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("fm5-eval", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "lm_eval"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def recipe(script) -> dict:
    """The settings that say how the text is shown to the model , as fm5_plan.json declares them (training.views)."""
    return {"document_schedule": script.document_schedule, "document_epochs": script.document_epochs,
            "document_views": script.document_views, "document_headings": script.document_headings,
            "document_questions": script.document_questions}


def plan(script, inputs) -> dict:
    """What fm5_plan.json declares before training: the comparison the verdict is about and the split it uses."""
    import datetime

    return {"primary": script.primary_comparison, "stored": script.stored_comparison, "declared_at": datetime.datetime.now(datetime.timezone.utc)
            .isoformat(timespec="seconds"), "git_commit": git_commit(), "split": inputs.split.as_dict(),
            "recipe": recipe(script),
            **{k: sorted(v) for k, v in inputs.groups.ids().items()}}


def run_record(script, checked, output_dir: Path, final, stages: list[dict], rows: dict, started: float,
               resume_from: Path | None) -> run_layout.RunRecord:
    """The finished run's record; ``checked`` is step 1's findings (sft.Checked), ``final`` the last stage
    (stages.FinalStage), ``rows`` the counts of the rows built."""
    import time

    import torch

    inputs, trainer = checked.inputs, final.trainer
    declared = run_layout.read_plan(output_dir) or {}
    split, groups = inputs.split, inputs.groups
    corpus = None
    if inputs.corpus is not None:
        corpus = {**inputs.corpus.as_dict(), "trained_texts": len(inputs.documents), "document": None}
        if script.document:
            corpus["document"] = {"path": str(Path(script.document).resolve()),
                                  "sha256": fm5_data.file_sha256(script.document), "texts": len(checked.documents)}
    return run_layout.RunRecord(
        base_model=script.model_name_or_path, base_resolved=checked.model_path, gguf_file=script.gguf_file,
        dtype=script.dtype, adapter=files.read_json(output_dir / "adapter_config.json", run_layout.RunError),
        config={"fm5": asdict(script), "sft": final.config.to_dict()},
        data_path=str(checked.data_path.resolve()), data_sha256=fm5_data.file_sha256(checked.data_path),
        data_rows=len(checked.rows),
        split=run_layout.SplitRecord(
            **split.as_dict(), eval_size=script.eval_size,
            train_ids=tuple(sorted(r["id"] for r in inputs.train)), eval_ids=tuple(sorted(r["id"] for r in inputs.eval)),
            **{k: tuple(sorted(v)) for k, v in groups.ids().items()}),
        stages=tuple(stages), corpus=corpus, rows=rows, git_commit=git_commit(), versions=versions(),
        device=str(trainer.args.device), world_size=trainer.args.world_size,
        wall_time_s=round(time.time() - started, 1), train_runtime_s=final.result.metrics.get("train_runtime"),
        tokens_seen=trainer.state.num_input_tokens_seen or None, answer_tokens_per_epoch=final.answer_tokens,
        global_step=trainer.state.global_step, best_checkpoint=trainer.state.best_model_checkpoint,
        resumed_from=str(resume_from) if resume_from else None, torch_threads=torch.get_num_threads(),
        # the one change made to a library's behaviour, in effect during trainer.train() only (label_positions_only)
        patches={"trl_use_triton_cpu_label_positions_only": final.compact_head and trainer.args.device.type == "cpu"},
        primary=declared.get("primary"), stored=declared.get("stored"), declared_at=declared.get("declared_at"),
        decontamination=inputs.decontamination(),
    )
