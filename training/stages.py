"""The two stages of `fm5 train`, each one SFTTrainer over the same LoRA adapter: the document stage (plain text,
loss on every token, saved to output_dir/document/) and the QA stage (prompt/completion rows, loss on the answer),
or both in one mixed stage; and the one switch fm5 makes in TRL's behaviour while a trainer runs."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from pathlib import Path

from harness_ext import run_layout
from training.rows import prepared_rows

log = logging.getLogger("fm5.train")


def document_config(sft, script: ScriptArguments, output_dir: Path):
    """The document stage's SFTConfig: the QA stage's settings, its own epochs, learning rate and output folder,
    plain-text rows (loss on every token), no eval set (eval loss is the QA rows'), one save at its end."""
    return dataclasses.replace(
        sft, output_dir=str(output_dir / run_layout.DOCUMENT_DIR), num_train_epochs=script.document_epochs,
        learning_rate=script.document_learning_rate or sft.learning_rate, eval_strategy="no", save_strategy="no",
        load_best_model_at_end=False, dataset_text_field="text", completion_only_loss=None, assistant_only_loss=False,
    )


def document_stage(model, tokenizer, sft, script, lora, texts: list[dict], output_dir: Path, resume: bool):
    """Train the adapter on the document texts (or take it from output_dir/document/ when a resumed run finished
    that stage); returns the model with the adapter and the stage record."""
    from datasets import Dataset
    from peft import PeftModel
    from trl import SFTTrainer

    doc_dir = output_dir / run_layout.DOCUMENT_DIR
    if resume and (doc_dir / run_layout.STAGE_FILE).is_file():  # done before the interruption
        return PeftModel.from_pretrained(model, str(doc_dir), is_trainable=True), run_layout.read_stage(doc_dir)
    trainer = SFTTrainer(model=model, args=document_config(sft, script, output_dir), processing_class=tokenizer,
                         peft_config=lora, train_dataset=Dataset.from_list(texts))
    t0 = time.time()
    with label_positions_only(script.cpu_label_positions_only):
        result = trainer.train()
    trainer.save_model(str(doc_dir))
    stage = {"name": "document", "texts": len(texts), "epochs": script.document_epochs,
             "learning_rate": trainer.args.learning_rate, "global_step": trainer.state.global_step,
             "tokens_seen": trainer.state.num_input_tokens_seen or None,
             "train_loss": result.metrics.get("train_loss"), "wall_time_s": round(time.time() - t0, 1),
             "adapter": str(doc_dir)}
    if trainer.is_world_process_zero():
        run_layout.write_stage(doc_dir, stage)
    return trainer.model, stage


@dataclasses.dataclass
class FinalStage:
    """The last stage's trainer and what fm5_run.json records of it."""

    trainer: object
    result: object
    config: object  # the SFTConfig it ran with (the mixed stage's: one pass, the document learning rate)
    stage: dict
    answer_tokens: int | None  # answer tokens per epoch (labels of the QA rows)
    compact_head: bool  # label_positions_only was in effect


def final_stage(model, tokenizer, sft, script, lora, train_rows: list[dict], eval_rows: list[dict],
                texts: list[dict], resume_from: Path | None) -> FinalStage:
    """The QA stage over prompt/completion rows (continuing the document stage's adapter when ``lora`` is None), or,
    with ``texts``, the mixed stage: every QA row num_train_epochs times and every document text document_epochs
    times in one shuffled pass at document_learning_rate."""
    from datasets import Dataset
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

    n_rows, answer_tokens, mixed = len(train_rows), None, bool(texts)
    if mixed:
        qa_epochs = int(sft.num_train_epochs)
        qa_prepared = prepared_rows(train_rows, [], tokenizer)
        answer_tokens = sum(sum(t != -100 for t in r["labels"]) for r in qa_prepared)
        train_rows = qa_prepared * qa_epochs + prepared_rows([], [d["text"] for d in texts], tokenizer) * int(
            script.document_epochs)
        eval_rows = prepared_rows(eval_rows, [], tokenizer)
        sft = dataclasses.replace(sft, num_train_epochs=1,
                                  learning_rate=script.document_learning_rate or sft.learning_rate)
    callbacks = []
    if script.early_stopping_patience and eval_rows:
        callbacks.append(EarlyStoppingCallback(script.early_stopping_patience, script.early_stopping_threshold))
    if not eval_rows:
        sft.eval_strategy, sft.load_best_model_at_end = "no", False
    trainer = SFTTrainer(
        model=model, args=sft, processing_class=tokenizer, peft_config=lora, callbacks=callbacks,
        train_dataset=Dataset.from_list(train_rows), eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
    )
    with label_positions_only(script.cpu_label_positions_only) as compact_head:
        result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    stage = {"name": "qa", "rows": n_rows, "epochs": sft.num_train_epochs}
    if mixed:
        stage = {"name": "mixed", "texts": len(texts), "document_epochs": script.document_epochs, "rows": n_rows,
                 "qa_epochs": qa_epochs, "sequences": len(trainer.train_dataset)}
        if not n_rows:  # a document file alone: the document stage is the only one
            stage = {"name": "document", "texts": len(texts), "epochs": script.document_epochs,
                     "sequences": len(trainer.train_dataset)}
    stage.update(learning_rate=sft.learning_rate, global_step=trainer.state.global_step)
    if answer_tokens is None and "labels" in trainer.train_dataset.column_names:
        answer_tokens = sum(sum(1 for t in ex["labels"] if t != -100) for ex in trainer.train_dataset)
    return FinalStage(trainer, result, sft, stage, answer_tokens, compact_head)


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
