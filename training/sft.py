"""LoRA fine-tuning on FM 5-0 with TRL's SFTTrainer: a document stage, then the QA stage, into one adapter.

    fm5 train --config training/configs/smollm2_cpu.yaml --data ../shared/fm5/qa_pairs.jsonl --output_dir runs/smollm2
    accelerate launch -m training.sft --config training/configs/llama32_1b_gpu.yaml --output_dir runs/llama

The recipe reads top to bottom (`train`): check everything (config, data, model config, output dir) -> what training
may read (harness_ext.data.training_inputs: the shared split, its seen/unseen halves, the QA rows, the document
corpus minus everything that shares a long span with an unseen passage) -> load the base (GGUF dequantized once,
cached) -> build the prompt/completion rows (training.rows) -> 1. the document stage, 2. the QA stage
(training.stages) -> save the adapter, checkpoints, trainer_state.json and fm5_run.json (training.provenance).
Any field of ScriptArguments or TRL's SFTConfig can be set in the YAML and overridden with `--key value`
(training.config).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness_ext import data as fm5_data
from harness_ext import run_layout
from harness_ext.errors import UsageError
from training import provenance, stages, views
from training.config import CPU_CONFIG, ScriptArguments, check_model, load_config, parse_overrides
from training.rows import build_rows

log = logging.getLogger("fm5.train")


def prepare_output_dir(output_dir: Path, resume: bool, overwrite: bool) -> Path | None:
    """Decide what to do with an existing output dir; returns the checkpoint to resume from, if any."""
    if not output_dir.exists() or not any(output_dir.iterdir()):
        return None
    if overwrite:
        shutil.rmtree(output_dir)
        return None
    if (output_dir / run_layout.RUN_FILE).is_file():
        raise UsageError(f"{output_dir}: holds a finished run ({run_layout.RUN_FILE}); pass --overwrite to replace it")
    if not resume:
        raise UsageError(f"{output_dir}: holds an unfinished run; pass --resume to continue it or --overwrite")
    done = run_layout.complete_checkpoints(output_dir)
    for partial in set(run_layout.checkpoints(output_dir)) - set(done):
        log.warning("removing incomplete checkpoint %s", partial)
        shutil.rmtree(partial)
    return done[-1] if done else None


def prepare_inputs(script: ScriptArguments, rows: list[dict], documents: list[str]) -> fm5_data.TrainingInputs:
    """What training may read (harness_ext.data.training_inputs) for these settings, near-duplicates of held-out
    rows dropped under the probe's sentence embedding, logged."""
    from harness_ext.embeddings import embed

    try:
        inputs = fm5_data.training_inputs(
            rows, fm5_data.Split(script.test_size, script.split_seed, script.seen_fraction),
            eval_size=script.eval_size, max_train_rows=script.max_train_rows,
            document_stage=bool(script.document_epochs), documents=documents, use_passages=script.document_passages,
            max_document_rows=script.max_document_rows, document_questions=script.document_questions, embed=embed)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if inputs.near_duplicates:
        log.info("dropped %d training-side rows that are near-duplicates of held-out rows (e.g. %s)",
                 len(inputs.near_duplicates), ", ".join(f"{k} ~ {v[0]}" for k, v in
                                                       list(inputs.near_duplicates.items())[:3]))
    if inputs.continuation_leaks:
        log.info("dropped %d training-side rows whose question or answer leaks into a sentence the continuation probe "
                 "scores in an unseen passage (e.g. %s)", len(inputs.continuation_leaks),
                 ", ".join(f"{k} ~ {v[0]}" for k, v in list(inputs.continuation_leaks.items())[:3]))
    if inputs.study is not None:
        study = inputs.study.as_dict()
        log.info("study questions: %d built from the document texts, %d dropped by the decontamination rules (%s), "
                 "%d trained with the QA rows", study["built"], len(inputs.study.dropped),
                 ", ".join(f"{k}: {v}" for k, v in study["dropped"].items()) or "none", study["kept"])
    if script.max_train_rows and len(inputs.train) == script.max_train_rows:
        log.info("subsampled %d training rows", len(inputs.train))
    if inputs.corpus is not None:
        corpus = inputs.corpus
        log.info("document corpus: %d passages (%d withheld: unseen or sharing a %d-word span with one), %d "
                 "--document texts (%d dropped for a shared span), %d texts dropped for leaking into the "
                 "continuation probe's unseen sentences; training on %d texts", corpus.passages,
                 corpus.passages_withheld, fm5_data.SPAN_WORDS, corpus.document_texts, corpus.document_dropped,
                 len(corpus.continuation_dropped), len(inputs.documents))
        if not inputs.documents:
            raise UsageError("document_epochs > 0 but the document corpus is empty")
    return inputs


@dataclass
class Checked:
    """Step 1's findings: what training reads and the model it loads."""

    data_path: Path
    rows: list[dict]
    documents: list[str]
    inputs: fm5_data.TrainingInputs
    model_path: str


def check_inputs(script: ScriptArguments) -> Checked:
    """Step 1 of training, before touching the output dir or loading weights: the data, the split and its halves,
    the QA rows, the document corpus, the model's config and LoRA targets."""
    from harness_ext.embeddings import embed

    if not script.qa:  # a document file alone: its texts are the rows of the split
        data_path = fm5_data.existing_file(script.document, "--document")
        documents = fm5_data.load_documents(data_path)
        split = fm5_data.Split(script.test_size, script.split_seed, script.seen_fraction)
        try:
            inputs = fm5_data.document_inputs(documents, split, script.max_document_rows, embed=embed)
        except ValueError as err:
            raise UsageError(str(err)) from None
        log.info("document file alone: %d texts; %d seen / %d unseen held out; training on %d texts",
                 len(documents), len(inputs.groups.seen), len(inputs.groups.unseen), len(inputs.documents))
        return Checked(data_path, fm5_data.text_rows(documents), documents, inputs, check_model(script))
    data_path = fm5_data.resolve_data_path(script.data)
    rows = fm5_data.load_qa(data_path)
    documents = fm5_data.load_documents(script.document) if script.document else []
    inputs = prepare_inputs(script, rows, documents)
    return Checked(data_path, rows, documents, inputs, check_model(script))


def check(script: ScriptArguments, sft) -> dict:
    """`fm5 train --check`: step 1 alone, and what training would do with output_dir; trains nothing."""
    checked, output_dir = check_inputs(script), Path(sft.output_dir)
    state = "empty"
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"{output_dir}: output_dir is a file")
    if output_dir.is_dir() and any(output_dir.iterdir()):
        state = "finished run" if (output_dir / run_layout.RUN_FILE).is_file() else "unfinished run"
    inputs = checked.inputs
    return {"data": str(checked.data_path), "rows": len(checked.rows), "train": len(inputs.train),
            "eval": len(inputs.eval), "test_seen": len(inputs.groups.seen),
            "test_unseen": len(inputs.groups.unseen), "near_duplicates_dropped": len(inputs.near_duplicates),
            "continuation_leaks_dropped": len(inputs.continuation_leaks),
            "document_texts": len(inputs.documents),
            "study_questions": None if inputs.study is None else len(inputs.study.rows),
            "document_schedule": script.document_schedule if inputs.documents else None,
            "model": checked.model_path, "output_dir": str(output_dir), "output_dir_holds": state}


def _resume_point(output_dir: Path, resume: bool, overwrite: bool) -> Path | None:
    if int(os.environ.get("RANK", "0")) == 0:
        return prepare_output_dir(output_dir, resume, overwrite)
    # data-parallel workers: rank 0 alone removes or refuses; the others only look
    done = run_layout.complete_checkpoints(output_dir) if resume and not overwrite and output_dir.is_dir() else []
    return done[-1] if done else None


def train(script: ScriptArguments, sft, resume: bool = False, overwrite: bool = False) -> Path:
    # 1. check everything before touching the output dir or loading weights; what training reads is decided here
    checked = check_inputs(script)
    inputs, output_dir = checked.inputs, Path(sft.output_dir)
    resume_from = _resume_point(output_dir, resume, overwrite)
    if int(os.environ.get("RANK", "0")) == 0:  # the declared comparison, before any training step
        run_layout.write_plan(output_dir, provenance.plan(script, inputs))

    from peft import LoraConfig

    from harness_ext.models import load_base

    # On CUDA, rows of many lengths fragment the caching allocator: on an H100 (Llama-3.2-1B shape, batch 16) steps
    # stalled for 2-8 s at new shapes without this; runs with it had no stalls and 19.3k real tokens/s (12.3k without).
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    started = time.time()

    # 2. the base model (GGUF: dequantized once, then loaded from the cache)
    model, tokenizer = load_base(checked.model_path, script.gguf_file, dtype=script.dtype,
                                 attn_implementation=script.attn_implementation)
    model.config.use_cache = False

    # 3. prompt/completion rows from the shared prompt builder; long passages shortened, never the answer
    train_rows, n_short = build_rows(inputs.train, tokenizer, script.variant, sft.max_length)
    study_rows = []  # study questions: closed-book, in the QA rows' chat format, trained with the QA rows
    if inputs.study is not None:
        study_rows = build_rows(inputs.study.rows, tokenizer, "closed", sft.max_length)[0]
    train_rows += study_rows
    n_qa = len(train_rows)
    eval_rows, n_short_eval = build_rows(inputs.eval, tokenizer, script.variant, sft.max_length)
    if n_short or n_short_eval:
        log.warning("shortened the passage of %d training and %d eval rows to fit max_length=%s",
                    n_short, n_short_eval, sft.max_length)
    lora = LoraConfig(r=script.lora_r, lora_alpha=script.lora_alpha, lora_dropout=script.lora_dropout,
                      target_modules=list(script.lora_target_modules), bias="none", task_type="CAUSAL_LM")

    # 4. the document stage: causal-LM loss on every token of the corpus, into the LoRA adapter (the mixed and pit
    #    schedules train the texts in step 5 instead; pit first trains the QA rows alone, then with their passages)
    # (a document file alone, qa: false, trains its texts as a mixed stage with no QA rows: one trainer, one adapter)
    # (document_views / document_headings: each pass shows the texts differently, training.views)
    schedule = script.document_schedule if inputs.documents else "staged"
    mixed = schedule in ("mixed", "pit") or (not script.qa and bool(inputs.documents))
    heading_of = (views.headings([d["text"] for d in inputs.documents], views.passage_pages(checked.rows))
                  if script.document_headings else {})
    passes = stages.document_passes(script, sft, inputs.documents, heading_of)
    views_record = None if passes is None else views.summary(passes, [d["text"] for d in inputs.documents],
                                                             heading_of)
    done = []
    if inputs.documents and not mixed:
        model, stage = stages.document_stage(model, tokenizer, sft, script, lora, inputs.documents, output_dir, resume,
                                             passes, views_record)
        done.append(stage)
        lora = None  # the QA stage continues this adapter
    qa_epochs, name = None, "mixed"
    if schedule == "pit" and script.qa:  # QA first: the rows alone, then with their passages, into the adapter
        closed = build_rows(inputs.train, tokenizer, "closed", sft.max_length)[0] + study_rows
        with_passage = [r for r in inputs.train if r["passage"].strip()]
        opened = build_rows(with_passage, tokenizer, "open", sft.max_length)[0] + build_rows(
            [r for r in inputs.train if not r["passage"].strip()], tokenizer, "closed", sft.max_length)[0] + study_rows
        model, stage = stages.pit_qa_stage(model, tokenizer, sft, script, lora, closed, opened, len(with_passage),
                                           output_dir, resume)
        done.append(stage)
        lora, qa_epochs, name = None, 1, "pit-documents"
        train_rows = stages.pit_replay(closed, script.pit_replay, int(script.document_epochs), sft.seed)
        n_qa = len(closed)

    # 5. the QA stage (the same adapter), or the mixed stage (QA rows and document texts shuffled together; pit: the
    #    document texts with a QA replay)
    final = stages.final_stage(model, tokenizer, sft, script, lora, train_rows, eval_rows,
                               inputs.documents if mixed else [], resume_from, passes if mixed else None,
                               qa_epochs, name)
    if mixed and views_record is not None:
        final.stage["views"] = views_record
    final.trainer.save_model(str(output_dir))
    final.trainer.save_state()
    if not final.trainer.is_world_process_zero():
        return output_dir

    # 6. provenance, written last: its presence marks a finished run
    rows = {"variant": script.variant, "train": n_qa, "study_questions": len(study_rows), "eval": len(eval_rows),
            "max_length": sft.max_length, "passages_shortened": n_short + n_short_eval, "passages_withheld_unseen_span": inputs.passages_withheld}
    provenance.run_record(script, checked, output_dir, final, [*done, final.stage], rows, started,
                          resume_from).write(output_dir)
    return output_dir


if __name__ == "__main__":  # the old address, `accelerate launch -m training.sft` / `torchrun -m training.sft`
    import runpy

    sys.argv[1:1] = ["train"]  # the same command, `python -m fm5 train ...` (training never imports the command layer)
    runpy.run_module("fm5", run_name="__main__", alter_sys=True)
