"""The TRL + PEFT recipe: correct labels, a real short run, its outputs, resume, and every bad input."""

import json
import os
import re
import subprocess
import sys
import time

import pytest
import torch

from conftest import FM5, REPO, SMALL_TRAINING, fm5_in_process, write_jsonl
from harness_ext import prompts, run_layout
from harness_ext.errors import UsageError
from training import config as train_config
from training import sft, stages
from training import rows as train_rows

CPU_CONFIG = train_config.CPU_CONFIG  # the embedded default, from its one registry
# A real run, small: 4 steps per stage, a checkpoint every 2, conftest's SMALL_TRAINING (256 tokens, rank 8)
FAST = ["--max_steps", "4", "--save_strategy", "steps", "--save_steps", "2", "--eval_strategy", "steps",
        "--eval_steps", "2", "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "2",
        "--gradient_accumulation_steps", "1", "--logging_steps", "1", *SMALL_TRAINING]


def fm5_train(*args) -> subprocess.CompletedProcess:
    """`fm5 train --config CPU_CONFIG ARGS` in this process (conftest.fm5_in_process); the command's own process is
    tested by the killed run and the two-process run below."""
    return fm5_in_process("train", "--config", str(CPU_CONFIG), *args)


@pytest.fixture(scope="module")
def train_qa(tmp_path_factory, shared_rows):
    return write_jsonl(tmp_path_factory.mktemp("train") / "qa.jsonl", shared_rows[:40])


# ------------------------------------------------------------------------------------------------- labels


def _trl_dataset(model, tokenizer, rows, variant, tmp_path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    built, _ = train_rows.build_rows(rows, tokenizer, variant, 1024)
    args = SFTConfig(output_dir=str(tmp_path / "trl"), max_length=1024, report_to="none", use_cpu=True,
                     bf16=False, per_device_train_batch_size=2)
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer, train_dataset=Dataset.from_list(built))
    return trainer


@pytest.mark.parametrize("variant", ["open", "closed"])
def test_labels_are_the_answer_and_its_end_token(smollm2, shared_rows, tmp_path, variant):
    model, tokenizer, _ = smollm2
    rows = shared_rows[100:104]
    trainer = _trl_dataset(model, tokenizer, rows, variant, tmp_path)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])  # pad == eos here
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    for i, row in enumerate(rows):
        labels = [t for t in batch["labels"][i].tolist() if t != -100]
        assert tokenizer.decode(labels) == row["answer"].strip() + "<|im_end|>\n"
        ids = [t for t, m in zip(batch["input_ids"][i].tolist(), batch["attention_mask"][i].tolist()) if m]
        prompt = prompts.render_prompt(tokenizer, prompts.build_messages(row, variant))
        assert tokenizer.decode(ids) == prompt + row["answer"].strip() + "<|im_end|>\n"  # the eval prompt exactly


def test_prepared_rows_are_trls_own_preparation(smollm2, llama3_tokenizer, shared_rows, tmp_path):
    """The mixed schedule tokenizes chat rows and document texts itself; both must equal what TRL makes of them."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model, tokenizer, _ = smollm2
    rows, texts = shared_rows[100:103], [r["passage"] for r in shared_rows[200:202]]
    for variant in ("open", "closed"):
        built, _ = train_rows.build_rows(rows, tokenizer, variant, 1024)
        trl_rows = _trl_dataset(model, tokenizer, rows, variant, tmp_path).train_dataset
        assert train_rows.prepared_rows(built, [], tokenizer) == [{k: ex[k] for k in ("input_ids", "labels")}
                                                             for ex in trl_rows]
    args = SFTConfig(output_dir=str(tmp_path / "text"), max_length=1024, report_to="none", use_cpu=True, bf16=False,
                     dataset_text_field="text")
    trl_text = SFTTrainer(model=model, args=args, processing_class=tokenizer,
                          train_dataset=Dataset.from_list([{"text": t} for t in texts])).train_dataset
    ours = train_rows.prepared_rows([], texts, tokenizer)
    assert ours == [{k: ex[k] for k in ("input_ids", "labels")} for ex in trl_text]
    assert all(r["input_ids"][-1] == tokenizer.eos_token_id and r["labels"] == r["input_ids"] for r in ours)
    built, _ = train_rows.build_rows(rows[:1], llama3_tokenizer, "closed", 1024)  # one BOS, the end token a label
    (row,) = train_rows.prepared_rows(built, [], llama3_tokenizer)
    assert row["input_ids"].count(llama3_tokenizer.bos_token_id) == 1
    assert llama3_tokenizer.decode([t for t in row["labels"] if t != -100]) == rows[0]["answer"].strip() + "<|eot_id|>"


def test_llama3_rows_have_one_bos_and_keep_eot(llama3_tokenizer, shared_rows, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = llama3_tokenizer
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))
    rows = shared_rows[100:102]
    trainer = _trl_dataset(model, tok, rows, "open", tmp_path)
    for i, row in enumerate(rows):
        ex = trainer.train_dataset[i]
        assert ex["input_ids"].count(tok.bos_token_id) == 1 and ex["input_ids"][0] == tok.bos_token_id
        labels = [t for t in ex["labels"] if t != -100]
        assert tok.decode(labels) == row["answer"].strip() + "<|eot_id|>"
        assert f"Today Date: {prompts.PINNED_DATE}" in tok.decode(ex["input_ids"])


def test_long_passage_is_shortened_question_and_answer_kept(smollm2, shared_rows):
    _, tokenizer, _ = smollm2
    row = max(shared_rows, key=lambda r: len(r["passage"]))
    fitted, cut = train_rows.fit_passage(tokenizer, row, "open", 256)
    assert cut and fitted["question"] == row["question"] and fitted["answer"] == row["answer"]
    assert row["passage"].startswith(fitted["passage"][:50]) and len(fitted["passage"]) < len(row["passage"])
    assert train_rows._full_length(tokenizer, fitted, "open") <= 256
    built, shortened = train_rows.build_rows([row], tokenizer, "mixed", 256)
    assert shortened == 1 and len(built) == 2  # mixed: an open and a closed row for each question
    closed = train_rows._full_length(tokenizer, row, "closed")  # a closed row has nothing to shorten: refused
    assert train_rows.fit_passage(tokenizer, row, "closed", closed) == (row, False)
    with pytest.raises(UsageError, match=rf"row {row['id']}: question and answer alone exceed max_length"):
        train_rows.build_rows([row], tokenizer, "closed", closed - 1)


@pytest.mark.slow
def test_padding_free_batch_gives_the_padded_loss(smollm2, shared_rows, tmp_path):
    """`--padding_free true` (one flat row per batch, no pad tokens) trains on exactly the padded batch's loss."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model, tokenizer, _ = smollm2
    built, _ = train_rows.build_rows(shared_rows[100:104], tokenizer, "open", 1024)
    losses, batches = {}, {}
    for flat in (False, True):
        args = SFTConfig(output_dir=str(tmp_path / str(flat)), max_length=None if flat else 1024, padding_free=flat,
                         report_to="none", use_cpu=True, bf16=False)
        trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer, train_dataset=Dataset.from_list(built))
        batches[flat] = trainer.data_collator([trainer.train_dataset[i] for i in range(len(built))])
        with torch.no_grad():
            losses[flat] = trainer.compute_loss(model, dict(batches[flat]))
    assert batches[True]["input_ids"].shape[0] == 1 and "attention_mask" not in batches[True]
    assert batches[True]["input_ids"].numel() == int(batches[False]["attention_mask"].sum())  # no pad tokens
    torch.testing.assert_close(losses[True], losses[False], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_padding_free_rows_are_cut_as_trl_cuts_padded_ones(smollm2, shared_rows, tmp_path):
    """TRL cuts no padding-free row at max_length (and refuses one): rows.for_trl hands texts and tokenized rows over
    cut exactly as TRL cuts them in a padded run (a row left without a label dropped, as TRL drops it); chat rows,
    which build_rows made fit, and padded runs pass unchanged."""
    import dataclasses

    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model, tokenizer, _ = smollm2
    texts = [r["passage"] for r in shared_rows[200:204]]
    built, _ = train_rows.build_rows(shared_rows[100:103], tokenizer, "open", 1024)
    limit = 48  # under every text and every open-book row's prompt (those three rows are then left without a label)
    padded = SFTConfig(output_dir=str(tmp_path / "padded"), max_length=limit, report_to="none", use_cpu=True,
                       bf16=False, dataset_text_field="text")
    free = dataclasses.replace(padded, padding_free=True)
    for rows in ([{"text": t} for t in texts], train_rows.prepared_rows(built, texts, tokenizer)):
        trl_cut = SFTTrainer(model=model, args=padded, processing_class=tokenizer,
                             train_dataset=Dataset.from_list(rows)).train_dataset
        args, ours = train_rows.for_trl(free, rows, tokenizer)
        assert args.padding_free and args.max_length is None and padded.max_length == limit
        assert ours == [{k: ex[k] for k in ("input_ids", "labels")} for ex in trl_cut]
        assert len(ours) == len(texts) and all(len(r["input_ids"]) == limit for r in ours)
        taken = SFTTrainer(model=model, args=args, processing_class=tokenizer,  # what TRL trains on: ours as given
                           train_dataset=Dataset.from_list(ours)).train_dataset
        assert [{k: ex[k] for k in ("input_ids", "labels")} for ex in taken] == ours
    assert train_rows.for_trl(free, built, tokenizer)[1] is built
    assert train_rows.for_trl(padded, [{"text": t} for t in texts], tokenizer)[0] is padded


def test_cpu_head_scores_label_positions_only(monkeypatch):
    """The fused LM head on CPU: only label positions are projected, with the same loss and gradients as TRL's
    score-everything path (so the speed-up changes no number)."""
    import trl.trainer.utils as trl_utils
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    model = LlamaForCausalLM(config)
    trl_utils.add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    ids = torch.randint(0, 300, (2, 24))
    labels = ids.clone()
    labels[0, :18], labels[1, :10] = -100, -100  # prompt positions carry no label
    seen = []
    chunked = trl_utils._ChunkedLogProbFunction

    class Spy:
        @staticmethod
        def apply(hidden, *rest):
            seen.append(hidden.shape[0])
            return chunked.apply(hidden, *rest)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Spy)

    def step():
        model.zero_grad()
        out = model(input_ids=ids, labels=labels, fused_lm_head=True)
        out.loss.backward()
        return out, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    full, full_grads = step()
    original = trl_utils._use_triton
    with stages.label_positions_only() as applied:
        assert applied and trl_utils._use_triton is not original
        compact, compact_grads = step()
    assert trl_utils._use_triton is original  # restored: nothing outside training sees the change
    with stages.label_positions_only(enabled=False) as applied:
        assert not applied and trl_utils._use_triton is original
        again, _ = step()
    # every shifted position, then the labels alone, then (switched off) every position again
    assert seen == [2 * 23, (labels[:, 1:] != -100).sum().item(), 2 * 23]
    torch.testing.assert_close(compact.loss, full.loss, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(compact.log_probs, full.log_probs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compact.entropy, full.entropy, rtol=1e-5, atol=1e-6)
    assert torch.equal(compact.is_top1, full.is_top1)
    for a, b in zip(compact_grads, full_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------------------------- real run


VIEWS = ["--document_epochs", "2", "--document_views", "shuffle", "--document_headings", "true"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, train_qa, fm5_cache, smollm2):
    """One real `fm5 train` of the embedded config (FAST), its document stage over 2 passes of varied views with
    headings (VIEWS), read by every test below that only reads a finished run."""
    out = tmp_path_factory.mktemp("run") / "adapter"
    proc = fm5_train("--data", str(train_qa), "--output_dir", str(out), *FAST, *VIEWS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_outputs_and_provenance(trained, train_qa):
    assert (trained / "adapter_model.safetensors").is_file() and (trained / "adapter_config.json").is_file()
    assert sorted(p.name for p in trained.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    state = json.loads((trained / "trainer_state.json").read_text())
    assert any("eval_loss" in e for e in state["log_history"]) and any("loss" in e for e in state["log_history"])
    run = json.loads((trained / "fm5_run.json").read_text())
    for key in ("base_model", "adapter", "config", "data", "split", "git_commit", "versions", "wall_time_s",
                "tokens_seen"):
        assert run[key] is not None, key
    from harness_ext.data import Split, file_sha256, load_qa

    assert run["data"]["sha256"] == file_sha256(train_qa)
    train_ids, test_ids = set(run["split"]["train_ids"]), set(run["split"]["test_ids"])
    assert train_ids and test_ids and train_ids.isdisjoint(test_ids)
    assert test_ids == Split(0.3, 42).test_ids(load_qa(train_qa))  # the config's split (fm5 eval reads it back)
    assert run["adapter"]["r"] == 8 and run["base_model"]["gguf_file"].endswith(".gguf")  # FAST's, not the config's
    # the control group: seen and unseen test ids, the two stages, the corpus
    seen, unseen = set(run["split"]["test_seen_ids"]), set(run["split"]["test_unseen_ids"])
    assert seen and unseen and seen.isdisjoint(unseen) and seen | unseen == test_ids
    groups = Split(0.3, 42).groups(load_qa(train_qa))
    assert seen == {r["id"] for r in groups.seen}  # the tasks' seen/unseen halves
    # the comparison declared before the first step, and the decontamination counts
    plan = json.loads((trained / "fm5_plan.json").read_text())
    assert plan["primary"] == run["primary"] == "final:fm5_qa_mc_closed:margin"
    assert plan["declared_at"] == run["declared_at"] and plan["test_seen_ids"] == sorted(seen)
    assert run["decontamination"]["rows_dropped"] == len(run["decontamination"]["pairs"])
    assert not {p[0] for p in run["decontamination"]["pairs"]} & (train_ids | set(run["split"]["eval_ids"]))
    assert [s["name"] for s in run["stages"]] == ["document", "qa"]
    assert run["patches"] == {"trl_use_triton_cpu_label_positions_only": True}  # on by default, recorded
    assert run["corpus"]["texts"] > 0 and len(run["corpus"]["sha256"]) == 64 and run["corpus"]["passages_withheld"] >= 2


@pytest.mark.slow
def test_both_stages_moved_the_adapter(trained):
    from safetensors.torch import load_file

    doc = load_file(trained / "document" / "adapter_model.safetensors")
    final = load_file(trained / "adapter_model.safetensors")
    assert json.loads((trained / "document" / "fm5_stage.json").read_text())["name"] == "document"
    assert set(doc) == set(final)
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in doc.items())  # the document stage trained it
    assert any(not torch.equal(doc[k], final[k]) for k in doc)  # and the QA stage continued it


@pytest.mark.slow
def test_no_held_out_text_reaches_any_training_input(shared_rows, shared_qa):
    """On the shared file and the whole manual: no unseen passage (nor a chunk or study question sharing a 13-word
    span with one) in the document stage or the study questions, no held-out question or answer anywhere, the seen
    passages read."""
    from harness_ext.data import SPAN_WORDS, load_documents, span_keys

    script, _ = sft.load_config(str(CPU_CONFIG), {"output_dir": "unused", "document_epochs": 3,
                                                  "max_document_rows": None})  # the whole corpus
    inputs = sft.prepare_inputs(script, shared_rows, load_documents(shared_qa.parent / "fm5_chunks.jsonl"))
    texts = [d["text"] for d in inputs.documents]
    unseen, seen, test = inputs.groups.unseen, inputs.groups.seen, inputs.groups.test
    study = inputs.study.rows  # the embedded config's study questions, trained with the QA rows
    assert study
    spans = {k for r in unseen for k in span_keys(r["passage"]) if len(k) == SPAN_WORDS}
    for text in texts + [r[f] for r in study for f in ("question", "answer")]:  # an independent look: every
        words = re.findall(r"\w+", text.lower())  # 13-word window of every text and study question
        assert not {tuple(words[i : i + SPAN_WORDS]) for i in range(len(words) - SPAN_WORDS + 1)} & spans
    qa_inputs = [f"{r['passage']} {r['question']} {r['answer']}" for r in inputs.train + inputs.eval + study]
    for row in test:
        for field in ("question", "answer"):
            assert not any(row[field].strip() in t for t in texts + qa_inputs), (row["id"], field)
        assert row["id"] not in {r["id"] for r in inputs.train + inputs.eval}
    assert {r["passage"].strip() for r in seen} <= set(texts)
    assert not {r["passage"].strip() for r in unseen} & set(texts)
    assert inputs.corpus.document_dropped > 0 and len(texts) == inputs.corpus.passages + inputs.corpus.document_texts


@pytest.mark.slow
def test_adapter_moved_base_did_not_and_merge_is_exact(trained, smollm2):
    from peft import PeftModel
    from safetensors.torch import load_file

    model, tokenizer, _ = smollm2
    before = {k: v.clone() for k, v in model.state_dict().items()}
    weights = load_file(trained / "adapter_model.safetensors")
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in weights.items())  # B starts at zero
    peft_model = PeftModel.from_pretrained(model, str(trained))
    peft_model.eval()
    ids = tokenizer("The operations process consists of", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        unmerged = peft_model(ids).logits
        with peft_model.disable_adapter():
            base_logits = peft_model(ids).logits
        merged = peft_model.merge_and_unload()(ids).logits  # merges into the shared model: restore below
    assert not torch.allclose(unmerged, base_logits)
    assert torch.allclose(unmerged, merged, atol=1e-4)
    model.load_state_dict(before)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])


@pytest.mark.slow
def test_every_checkpoint_loads_as_a_peft_adapter(trained, smollm2):
    from peft import PeftModel

    from harness_ext.models import check_adapter_dir

    model, _, _ = smollm2
    for ckpt in sorted(trained.glob("checkpoint-*")):
        check_adapter_dir(ckpt)
        peft_model = PeftModel.from_pretrained(model, str(ckpt))
        assert peft_model.active_adapter == "default"
        peft_model.unload()


@pytest.mark.slow
def test_finished_run_is_refused_without_overwrite(trained, train_qa):
    proc = fm5_train("--data", str(train_qa), "--output_dir", str(trained), *FAST)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_resume_after_a_killed_run(tmp_path, train_qa, fm5_cache, trained):
    out = tmp_path / "resumed"
    cmd = [*FM5, "train", "--config", str(CPU_CONFIG), "--data", str(train_qa),
           "--output_dir", str(out), *FAST]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not run_layout.complete_checkpoints(out) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    proc.kill()
    proc.wait()
    assert run_layout.complete_checkpoints(out), "no checkpoint before the kill"
    assert not (out / "fm5_run.json").exists()
    half = out / "checkpoint-3"  # a checkpoint cut off mid-write must not be resumed from
    half.mkdir(exist_ok=True)
    (half / "adapter_config.json").write_text("{")
    refused = fm5_train("--data", str(train_qa), "--output_dir", str(out), *FAST)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    done = fm5_train("--data", str(train_qa), "--output_dir", str(out), "--resume", *FAST)
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads((out / "fm5_run.json").read_text())
    assert run["resumed_from"].endswith("checkpoint-2") and run["global_step"] == 4
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in trained.iterdir())


@pytest.mark.slow
def test_mixed_schedule_trains_texts_and_rows_in_one_stage(tmp_path, train_qa, fm5_cache):
    out = tmp_path / "mixed"
    proc = fm5_train("--data", str(train_qa), "--output_dir", str(out), "--document_schedule", "mixed",
                     "--document_epochs", "2", "--num_train_epochs", "3", "--document_views", "shuffle", *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads((out / "fm5_run.json").read_text())
    (stage,) = run["stages"]
    assert stage["views"]["passes"] == 2 and stage["views"]["views_differing_from_text"] > 0  # the second pass
    assert stage["name"] == "mixed" and stage["learning_rate"] == 1e-3  # the document stage's rate
    assert stage["sequences"] == 2 * stage["texts"] + 3 * stage["rows"] and stage["texts"] == run["corpus"]["texts"]
    assert not (out / run_layout.DOCUMENT_DIR).exists() and run_layout.complete_checkpoints(out)
    proc = fm5_train("--data", str(train_qa), "--output_dir", str(tmp_path / "x"), "--document_schedule", "mixed",
                     "--document_epochs", "2.5", "--check")
    assert proc.returncode == 2 and "document_epochs must be a whole number" in proc.stderr


@pytest.mark.slow
def test_document_views_train_each_pass_once_in_turn(trained):
    """document_views shuffle + document_headings (the trained run's VIEWS): one epoch over the passes' views,
    declared in fm5_plan.json."""
    out = trained
    run = json.loads((out / "fm5_run.json").read_text())
    document = run["stages"][0]
    assert document["name"] == "document" and document["epochs"] == 2
    views = document["views"]
    assert views["passes"] == 2 and views["texts"] == run["corpus"]["trained_texts"]
    assert views["views_differing_from_text"] >= views["texts_with_heading"] > 0
    plan = json.loads((out / run_layout.PLAN_FILE).read_text())
    assert plan["recipe"]["document_views"] == "shuffle" and plan["recipe"]["document_headings"] is True


@pytest.mark.slow
def test_pit_schedule_with_study_questions(tmp_path, train_qa, fm5_cache):
    """document_schedule pit + document_questions: QA first (alone, then with passages), then the texts with a QA
    replay; the study questions trained with the QA rows, counted in fm5_run.json and in the report's recipe line."""
    from reports.build import recipe_line

    out = tmp_path / "pit"
    proc = fm5_train("--data", str(train_qa), "--output_dir", str(out), "--document_schedule", "pit",
                     "--document_epochs", "2", "--document_questions", "3", *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads((out / "fm5_run.json").read_text())
    first, last = run["stages"]
    study = run["decontamination"]["study_questions"]
    assert study["kept"] > 0 and study["built"] == study["kept"] + sum(study["dropped"].values())
    assert run["rows"]["study_questions"] == study["kept"] and run["rows"]["train"] == first["rows"]
    assert first["name"] == "pit-qa" and first["sequences"] == 2 * first["rows"] and first["rows_with_passage"] > 0
    replay = max(1, round(0.1 * first["rows"]))
    assert last["name"] == "pit-documents" and last["sequences"] == 2 * last["texts"] + 2 * replay
    assert (out / stages.PIT_DIR / run_layout.STAGE_FILE).is_file() and not (out / run_layout.DOCUMENT_DIR).exists()
    assert "study questions: " in recipe_line(run_layout.read_run(out))


# ------------------------------------------------------------------------------------------------ bad input


def _bad_config(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(CPU_CONFIG.read_text() + text)
    return path


BAD_DATA = {
    "malformed line": b'{"passage": "p", "question": "q", "answer": "a"}\n{oops\n',
    "missing field": b'{"passage": "p", "answer": "a"}\n',
    "non-string field": b'{"passage": "p", "question": 1, "answer": "a"}\n',
    "empty question": b'{"passage": "p", "question": "", "answer": "a"}\n',
    "duplicate id": b'{"id": 1, "passage": "p", "question": "q", "answer": "a"}\n'
                    b'{"id": 1, "passage": "p", "question": "q2", "answer": "a"}\n',
    "invalid utf-8": b'{"passage": "\xc3\x28", "question": "q", "answer": "a"}\n',
    "empty file": b"",
}


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_fails_fast_with_one_line(tmp_path, case):
    data = tmp_path / "bad.jsonl"
    data.write_bytes(BAD_DATA[case])
    out = tmp_path / "out"
    started = time.time()
    proc = fm5_train("--data", str(data), "--output_dir", str(out))
    assert proc.returncode == 2 and time.time() - started < 60
    assert "Traceback" not in proc.stderr and str(data) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("extra, words", [
    ("\nbogus_key: 1\n", "bogus_key"),
    ("\nlora_target_modules: [q_proj, not_a_module]\n", "not_a_module"),
    ("\ngguf_file: missing.gguf\n", "missing.gguf"),
])
def test_bad_config_fails_fast(tmp_path, train_qa, extra, words):
    out = tmp_path / "out"
    proc = fm5_in_process("train", "--config", str(_bad_config(tmp_path, extra)), "--data", str(train_qa),
                          "--output_dir", str(out))
    err = proc.stderr
    assert proc.returncode == 2 and words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_data_file_and_unknown_override(tmp_path):
    out = tmp_path / "out"
    proc = fm5_train("--data", str(tmp_path / "nope.jsonl"), "--output_dir", str(out))
    assert proc.returncode == 2 and "nope.jsonl" in proc.stderr and not out.exists()
    proc = fm5_train("--data", str(tmp_path / "nope.jsonl"), "--output_dir", str(out), "--no_such_option", "3")
    assert proc.returncode == 2 and "no_such_option" in proc.stderr


@pytest.mark.slow
def test_two_cpu_processes_give_one_adapter(tmp_path, train_qa, fm5_cache):
    """Data-parallel over gloo, as users run DDP with `accelerate launch --multi_gpu` or torchrun."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), "-m", "training.sft", "--config", str(CPU_CONFIG), "--data", str(train_qa),
           "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "2",
           "--gradient_accumulation_steps", "1",
           "--save_strategy", "no", "--eval_strategy", "no", "--ddp_backend", "gloo",
           "--ddp_find_unused_parameters", "false", "--padding_free", "true", *SMALL_TRAINING]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads((out / "fm5_run.json").read_text())
    assert run["world_size"] == 2 and run["global_step"] == 2
    sft_config, (document, _) = run["config"]["sft"], run["stages"]
    assert sft_config["padding_free"] and sft_config["max_length"] == run["rows"]["max_length"] == 256  # applied:
    assert document["tokens_seen"] <= 2 * 2 * 2 * 256  # 2 steps x 2 sequences x 2 processes, each cut at 256 tokens
    from harness_ext.models import check_adapter_dir

    check_adapter_dir(out)


def test_notebook_config_is_the_notebooks_and_fails_cleanly_here(tmp_path, train_qa, monkeypatch):
    """The GPU config holds the notebook's settings; on this CPU-only, offline machine it stops with one line."""
    import yaml

    path = REPO / "training" / "configs" / "llama32_1b_gpu.yaml"
    cfg = yaml.safe_load(path.read_text())
    assert (cfg["lora_r"], cfg["lora_alpha"], cfg["lora_dropout"], cfg["learning_rate"]) == (8, 16, 0.05, 2e-4)
    assert cfg["per_device_train_batch_size"] * cfg["gradient_accumulation_steps"] == 64
    assert cfg["neftune_noise_alpha"] == 0.1 and cfg["bf16"] and cfg["num_train_epochs"] == 10
    assert cfg["early_stopping_patience"] == 1 and cfg["early_stopping_threshold"] == 0.001
    assert cfg["load_best_model_at_end"] and cfg["metric_for_best_model"] == "eval_loss"
    assert (cfg["test_size"], cfg["split_seed"], cfg["max_length"], cfg["variant"]) == (0.1, 42, 1024, "open")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    proc = fm5_in_process("train", "--config", str(path), "--data", str(train_qa), "--output_dir",
                          str(tmp_path / "out"))
    err = proc.stderr
    assert proc.returncode == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_a_null_override_sets_a_field_to_null():
    overrides = train_config.parse_overrides(["--max_train_rows", "null", "--warmup_steps", "~"])
    assert overrides == {"max_train_rows": None, "warmup_steps": None}
    script, _ = sft.load_config(str(CPU_CONFIG), {"output_dir": "unused", "max_train_rows": None})
    assert script.max_train_rows is None  # the config says 160


def test_every_declared_grid_cell_is_a_valid_training_config(monkeypatch):
    """bench/recipe_grid.yaml's cells as its runner hands them to `fm5 train`: each one a valid config that sets what
    the cell says (a misspelt option would cost a cell ~47 minutes before it failed)."""
    import importlib

    import yaml

    monkeypatch.syspath_prepend(str(REPO / "bench"))
    runner = importlib.import_module("recipe_grid")
    grid = yaml.safe_load(runner.GRID.read_text())
    declared = [c for c in grid["cells"] if c["overrides"] is not None]
    assert [c["name"] for c in declared[:2]] == ["recipe", "views"] and grid["split_seed"] == 42
    for cell in declared:
        overrides = train_config.parse_overrides(runner.overrides_argv(cell["overrides"]))
        script, _ = sft.load_config(str(REPO / grid["config"]), {**overrides, "output_dir": "unused"})
        for key, value in cell["overrides"].items():
            assert getattr(script, key) == value, (cell["name"], key)


def test_check_prints_the_plan_and_trains_nothing(tmp_path, small_qa):
    out = tmp_path / "never"
    proc = fm5_train("--data", str(small_qa), "--output_dir", str(out), "--check")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["test_seen"] == plan["test_unseen"] == 12  # the config's 30 % split of 80 rows
    assert plan["train"] > 0 and plan["document_texts"] > 0 and plan["near_duplicates_dropped"] >= 0
    assert plan["document_schedule"] == "staged" and plan["study_questions"] > 0  # the frozen default's recipe
    assert plan["output_dir_holds"] == "empty" and not out.exists()
    for bad, field in ((["--lora_r", "-3"], "lora_r"), (["--seen_fraction", "[1]"], "seen_fraction"),
                       (["--variant", "9"], "variant"), (["--document_schedule", "3"], "document_schedule")):
        proc = fm5_train("--data", str(small_qa), "--output_dir", str(out), "--check", *bad)
        err = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(err) == 1 and f"field {field}" in err[0], err


def test_a_document_file_alone_trains_no_study_questions_unless_asked(tmp_path):
    """--no-qa drops the config's study questions (they are trained in the QA stage); asking for them by name is the
    one-line error."""
    doc = write_jsonl(tmp_path / "manual.jsonl", [{"text": f"Text number {i} of the manual, long enough to be a "
                                                           f"passage of its own here."} for i in range(60)])
    argv = ["--document", str(doc), "--no-qa", "--test_size", "0.2", "--output_dir", str(tmp_path / "never"), "--check"]
    proc = fm5_train(*argv)
    assert proc.returncode == 0 and json.loads(proc.stdout)["study_questions"] is None
    proc = fm5_train(*argv, "--document_questions", "3")
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and "document_questions needs a QA file" in err[0], err
