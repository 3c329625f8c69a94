"""The stages of `fm5 train`, each one SFTTrainer over the same LoRA adapter: the document stage (plain text,
loss on every token, saved to output_dir/document/) and the QA stage (prompt/completion rows, loss on the answer),
or both in one mixed stage, or QA first (`pit`); and the one switch fm5 makes in TRL's behaviour while a trainer
runs."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from pathlib import Path

from harness_ext import run_layout
from training import views
from training.rows import for_trl, prepared_rows

log = logging.getLogger("fm5.train")


def document_config(sft, script: ScriptArguments, output_dir: Path):
    """The document stage's SFTConfig: the QA stage's settings, its own epochs, learning rate and output folder,
    plain-text rows (loss on every token), no eval set (eval loss is the QA rows'), one save at its end."""
    return dataclasses.replace(
        sft, output_dir=str(output_dir / run_layout.DOCUMENT_DIR), num_train_epochs=script.document_epochs,
        learning_rate=script.document_learning_rate or sft.learning_rate, eval_strategy="no", save_strategy="no",
        load_best_model_at_end=False, dataset_text_field="text", completion_only_loss=None, assistant_only_loss=False,
    )


def document_passes(script, sft, texts: list[dict], heading_of: dict) -> list[list[str]] | None:
    """The document texts pass by pass under the run's views (training.views; ``heading_of``: text -> heading), or
    None when every pass shows them as written."""
    if not texts or (script.document_views == "none" and not script.document_headings):
        return None
    return views.passes([d["text"] for d in texts], int(script.document_epochs), sft.seed,
                        script.document_views == "shuffle", heading_of if script.document_headings else {})


def ordered_rows(passes: list[list[str]], tokenizer, sft) -> list[dict]:
    """The passes' views as rows, pass after pass, each pass in the order the run's sampler would draw for an epoch
    (group_by_length: transformers' own length grouping; random: a permutation; both seeded by seed + pass)."""
    import torch

    rows, batch = [], sft.per_device_train_batch_size * sft.gradient_accumulation_steps
    for p, texts in enumerate(passes):
        seed = sft.seed + p
        if sft.train_sampling_strategy == "group_by_length":
            lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
            order = views.length_grouped_order(lengths, batch, seed)
        elif sft.train_sampling_strategy == "sequential":
            order = range(len(texts))
        else:
            order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(seed)).tolist()
        rows += [{"text": texts[i]} for i in order]
    return rows


def document_stage(model, tokenizer, sft, script, lora, texts: list[dict], output_dir: Path, resume: bool,
                   passes: list[list[str]] | None = None, views_record: dict | None = None):
    """Train the adapter on the document texts (or take it from output_dir/document/ when a resumed run finished
    that stage); returns the model with the adapter and the stage record. With ``passes`` (document_passes), one
    epoch over the passes' views laid out pass after pass (ordered_rows), read in that order."""
    config, dataset = document_config(sft, script, output_dir), texts
    if passes is not None:
        dataset = ordered_rows(passes, tokenizer, sft)
        config = dataclasses.replace(config, num_train_epochs=1, train_sampling_strategy="sequential")
    record = {"name": "document", "texts": len(texts), "epochs": script.document_epochs}
    if views_record is not None:
        record["views"] = views_record
    return saved_stage(model, tokenizer, config, script, lora, dataset, output_dir / run_layout.DOCUMENT_DIR, resume,
                       record)


def saved_stage(model, tokenizer, config, script, lora, rows: list[dict], folder: Path, resume: bool, record: dict):
    """One stage that ends in an adapter of its own in ``folder`` (the document stage, pit's QA-first stage): trained
    over ``rows`` in one SFTTrainer, saved with its stage record (``record`` + learning rate, steps, tokens, loss,
    time) written last; taken from ``folder`` instead when a resumed run finished it."""
    from datasets import Dataset
    from peft import PeftModel
    from trl import SFTTrainer

    if resume and (folder / run_layout.STAGE_FILE).is_file():  # done before the interruption
        return PeftModel.from_pretrained(model, str(folder), is_trainable=True), run_layout.read_stage(folder)
    args, rows = for_trl(config, rows, tokenizer)
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer, peft_config=lora,
                         train_dataset=Dataset.from_list(rows))
    t0 = time.time()
    with label_positions_only(script.cpu_label_positions_only):
        result = trainer.train()
    trainer.save_model(str(folder))
    stage = {**record, "learning_rate": trainer.args.learning_rate, "global_step": trainer.state.global_step,
             "tokens_seen": trainer.state.num_input_tokens_seen or None,
             "train_loss": result.metrics.get("train_loss"), "wall_time_s": round(time.time() - t0, 1),
             "adapter": str(folder)}
    if trainer.is_world_process_zero():
        run_layout.write_stage(folder, stage)
    return trainer.model, stage


PIT_DIR = "pit-qa"  # the pit schedule's QA-first adapter, inside output_dir (resume starts after it)


def pit_replay(train_rows: list[dict], fraction: float, passes: int, seed: int) -> list[dict]:
    """The pit schedule's QA replay: for each document pass, ``fraction`` of the QA rows (at least one), drawn anew
    per pass (sha256 rule, like every subsample of the split)."""
    import hashlib

    if not train_rows or fraction <= 0:
        return []
    k, out = max(1, round(fraction * len(train_rows))), []
    for p in range(passes):
        rank = lambda r: hashlib.sha256(f"fm5-replay:{seed}:{p}:{r['id']}".encode()).hexdigest()  # noqa: E731
        out += sorted(train_rows, key=rank)[:k]
    return out


def blocks_in_turn(blocks: list[list], epochs: int, seed: int) -> list:
    """Each block ``epochs`` times, block after block, every pass of a block in a new seeded order."""
    import torch

    generator, rows = torch.Generator().manual_seed(seed), []
    for block in blocks:
        for _ in range(epochs):
            rows += [block[i] for i in torch.randperm(len(block), generator=generator).tolist()]
    return rows


def pit_qa_stage(model, tokenizer, sft, script, lora, closed_rows: list[dict], open_rows: list[dict],
                 with_passage: int, output_dir: Path, resume: bool):
    """The pit schedule's first two steps in one trainer at learning_rate: the QA rows alone (closed-book), then the
    same rows with their own passages (open-book; a row whose passage was withheld stays closed), each
    num_train_epochs times, laid out in that order and read in it (Jiang et al. 2024, "PIT": questions first, then
    questions with their documents, then the documents; ``with_passage``: how many open rows have one). Saved to
    output_dir/pit-qa/ (taken from there on resume)."""
    epochs = int(sft.num_train_epochs)
    rows = blocks_in_turn([prepared_rows(closed_rows, [], tokenizer), prepared_rows(open_rows, [], tokenizer)],
                          epochs, sft.seed)
    config = dataclasses.replace(sft, output_dir=str(output_dir / PIT_DIR), num_train_epochs=1, eval_strategy="no",
                                 save_strategy="no", load_best_model_at_end=False, train_sampling_strategy="sequential")
    record = {"name": "pit-qa", "rows": len(closed_rows), "rows_with_passage": with_passage, "epochs": epochs,
              "sequences": len(rows)}
    return saved_stage(model, tokenizer, config, script, lora, rows, output_dir / PIT_DIR, resume, record)


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
                texts: list[dict], resume_from: Path | None, passes: list[list[str]] | None = None,
                qa_epochs: int | None = None, name: str = "mixed") -> FinalStage:
    """The QA stage over prompt/completion rows (continuing the document stage's adapter when ``lora`` is None), or,
    with ``texts``, the mixed stage: every QA row num_train_epochs times and every document text document_epochs
    times (or the views of ``passes``, document_passes) in one shuffled pass at document_learning_rate (``qa_epochs``
    instead of num_train_epochs, and the stage's ``name``: the pit schedule's last stage, its QA replay once)."""
    from datasets import Dataset
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

    n_rows, answer_tokens, mixed = len(train_rows), None, bool(texts)
    if mixed:
        qa_epochs = int(sft.num_train_epochs) if qa_epochs is None else qa_epochs
        qa_prepared = prepared_rows(train_rows, [], tokenizer)
        answer_tokens = sum(sum(t != -100 for t in r["labels"]) for r in qa_prepared)
        documents = [t for views_of_pass in passes for t in views_of_pass] if passes is not None else \
            [d["text"] for d in texts] * int(script.document_epochs)
        train_rows = qa_prepared * qa_epochs + prepared_rows([], documents, tokenizer)
        eval_rows = prepared_rows(eval_rows, [], tokenizer)
        sft = dataclasses.replace(sft, num_train_epochs=1,
                                  learning_rate=script.document_learning_rate or sft.learning_rate)
    callbacks = []
    if script.early_stopping_patience and eval_rows:
        callbacks.append(EarlyStoppingCallback(script.early_stopping_patience, script.early_stopping_threshold))
    if not eval_rows:
        sft.eval_strategy, sft.load_best_model_at_end = "no", False
    args, train_rows = for_trl(sft, train_rows, tokenizer)  # the eval rows fit (build_rows)
    trainer = SFTTrainer(
        model=model, args=args, processing_class=tokenizer, peft_config=lora, callbacks=callbacks,
        train_dataset=Dataset.from_list(train_rows), eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
    )
    with label_positions_only(script.cpu_label_positions_only) as compact_head:
        result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    stage = {"name": "qa", "rows": n_rows, "epochs": sft.num_train_epochs}
    if mixed:
        stage = {"name": name, "texts": len(texts), "document_epochs": script.document_epochs, "rows": n_rows,
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
