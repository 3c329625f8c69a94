"""Benchmark: training throughput of the fm5 recipe vs the original notebook's recipe, same machine, same rows.

    python bench/train_throughput.py --data ../shared/fm5/qa_pairs.jsonl              # CPU, packaged SmolLM2-135M
    python bench/train_throughput.py --data qa.jsonl --model llama-1b-random --steps 20  # GPU, Llama-3.2-1B shape

fm5 recipe: TRL SFTTrainer, no gradient checkpointing, length-grouped batches, the LM head projected only where
there are labels (TRL's fused head), batch 1 (CPU: measured fastest here, 157 tokens/s vs 135 / 112 / 85 at batch
2 / 4 / 8, since larger padded activations fall out of cache) or 16 (GPU). Both recipes: LoRA r=8, alpha 16,
dropout 0.05 on q/v.
Notebook recipe: plain Trainer on the same rows padded to the longest in the batch, gradient checkpointing, full
vocabulary logits at every position, batch 2.

Counts real (non-pad) tokens per second after warm-up steps; prints both, their ratio, and each as a share of the
machine's arithmetic limit: FLOPs per token (4 x base parameters: forward + backward through frozen weights; LoRA
and attention-score FLOPs left out) x tokens/s over the matmul FLOP/s measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def lora_config():
    from peft import LoraConfig

    return LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")


def matmul_flops(device: str, dtype) -> float:
    import torch

    n = 2048 if device == "cpu" else 8192
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    reps = 5 if device == "cpu" else 50
    if device != "cpu":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device != "cpu":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t)


class TokenCounter:
    """Wraps a collator: records the real tokens of every batch it builds, in order."""

    def __init__(self, collator):
        self.collator, self.tokens = collator, []

    def __call__(self, examples):
        batch = self.collator(examples)
        mask = batch.get("attention_mask")
        self.tokens.append(int(mask.sum()) if mask is not None else int(batch["input_ids"].numel()))
        return batch


def _timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.ends = []

        def on_step_end(self, args, state, control, **kwargs):
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.ends.append(time.perf_counter())

    return StepTimer()


def tokens_per_second(counter: TokenCounter, timer, warmup: int) -> float:
    steps = len(timer.ends)
    tokens = sum(counter.tokens[warmup + 1 : steps])
    return tokens / (timer.ends[-1] - timer.ends[warmup])


def load_model(name: str, device: str):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from harness_ext.models import converted_base, load_base, packaged_smollm2

    base_dir = converted_base(*packaged_smollm2())
    model, tokenizer = load_base(str(base_dir))
    if name == "llama-1b-random":
        config = LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                             num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True,
                             max_position_embeddings=131072, rope_theta=500000.0)
        model = LlamaForCausalLM(config).to(dtype=torch.bfloat16)
    return model.to(device), tokenizer


def build_rows(data: str, tokenizer, n: int):
    from harness_ext.data import load_split
    from training.sft import build_rows as fm5_rows

    train, _ = load_split(data)
    rows, _ = fm5_rows(train[:n], tokenizer, "open", 1024)
    return rows


def run_fm5(model_name, device, rows, tokenizer, steps, warmup, batch):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model, _ = load_model(model_name, device)
    gpu = device != "cpu"
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(output_dir=out, max_steps=steps, per_device_train_batch_size=batch, learning_rate=2e-4,
                         gradient_checkpointing=False, bf16=gpu, use_cpu=not gpu, report_to="none",
                         save_strategy="no", logging_steps=1000, max_length=1024, disable_tqdm=True,
                         train_sampling_strategy="group_by_length", dataloader_num_workers=0)
        timer = _timer()
        trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer, train_dataset=Dataset.from_list(rows),
                             peft_config=lora_config(), callbacks=[timer])
        counter = TokenCounter(trainer.data_collator)
        trainer.data_collator = counter
        trainer.train()
    n_params = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    return tokens_per_second(counter, timer, warmup), n_params


def run_notebook(model_name, device, rows, tokenizer, steps, warmup, batch=2):
    """The notebook's Seq2SeqTrainer loop, on the same tokenized rows: pad to longest, gradient checkpointing,
    full logits and the model's own loss."""
    import torch
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import Trainer, TrainingArguments
    from trl import SFTConfig, SFTTrainer

    model, _ = load_model(model_name, device)
    gpu = device != "cpu"
    with tempfile.TemporaryDirectory() as out:
        # tokenize exactly as the fm5 recipe does, then hand the rows to a plain Trainer
        prep = SFTTrainer(model=model, args=SFTConfig(output_dir=out, max_length=1024, report_to="none",
                                                      use_cpu=not gpu, bf16=gpu),
                          processing_class=tokenizer, train_dataset=Dataset.from_list(rows))
        data = [{"input_ids": ex["input_ids"], "labels": ex["labels"]} for ex in prep.train_dataset]
        pad = tokenizer.pad_token_id

        def collate(examples):
            width = max(len(e["input_ids"]) for e in examples)
            ids = torch.full((len(examples), width), pad)
            labels = torch.full((len(examples), width), -100)
            mask = torch.zeros((len(examples), width), dtype=torch.long)
            for i, e in enumerate(examples):
                n = len(e["input_ids"])
                ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(e["input_ids"]), torch.tensor(e["labels"]), 1
            return {"input_ids": ids, "labels": labels, "attention_mask": mask}

        peft_model = get_peft_model(model, lora_config())
        args = TrainingArguments(output_dir=out, max_steps=steps, per_device_train_batch_size=batch,
                                 learning_rate=2e-4, gradient_checkpointing=True, bf16=gpu, use_cpu=not gpu,
                                 report_to="none", save_strategy="no", logging_steps=1000, disable_tqdm=True,
                                 remove_unused_columns=False, dataloader_num_workers=0)
        counter, timer = TokenCounter(collate), _timer()
        Trainer(model=peft_model, args=args, train_dataset=data, data_collator=counter, callbacks=[timer]).train()
    return tokens_per_second(counter, timer, warmup)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--model", choices=["smollm2", "llama-1b-random"], default="smollm2")
    p.add_argument("--steps", type=int, default=24, help="fm5-recipe steps (the first --warmup not timed); the "
                                                         "notebook recipe gets the same rows")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rows", type=int, default=64)
    args = p.parse_args()

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    peak = matmul_flops(device, dtype)
    print(f"device {device} ({torch.cuda.get_device_name() if device == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"measured matmul {peak / 1e9:.1f} GFLOP/s ({dtype})")
    _, tokenizer = load_model("smollm2", "cpu")
    rows = build_rows(args.data, tokenizer, args.rows)
    batch = 1 if device == "cpu" else 16
    ours, n_params = run_fm5(args.model, device, rows, tokenizer, args.steps, args.warmup, batch)
    # the notebook's batch of 2 over the same number of rows
    theirs = run_notebook(args.model, device, rows, tokenizer, max(args.steps * batch // 2, args.warmup + 2),
                          max(args.warmup * batch // 2, 1))
    flops_per_token = 4 * n_params
    for name, tps in (("fm5 recipe", ours), ("notebook recipe", theirs)):
        print(f"{name:16s} {tps:9.1f} real tokens/s = {flops_per_token * tps / peak:6.1%} of the matmul limit "
              f"({flops_per_token / 1e9:.2f} GFLOP/token x {tps:.1f}/s over {peak / 1e9:.1f} GFLOP/s)")
    print(f"ratio {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
