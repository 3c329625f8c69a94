"""Benchmark: training throughput of the fm5 recipe vs the original notebook's recipe, same machine, same rows.

    python bench/train_throughput.py --data ../shared/fm5/qa_pairs.jsonl                     # CPU, packaged SmolLM2-135M
    python bench/train_throughput.py --data qa.jsonl --model llama-1b-random --rows 256      # GPU, Llama-3.2-1B shape

fm5 recipe: TRL SFTTrainer, no gradient checkpointing, length-grouped batches, the LM head projected only where
there are labels (TRL's fused head; on CPU through training.stages.label_positions_only), batch 2 on CPU
(measured fastest on 2 cores: 199 / 259 / 196 real tokens/s at batch 1 / 2 / 4) or 16 on GPU; `--padding_free`
flattens each batch into one row with no padding (slower on CPU: sdpa then attends over the whole flat row).
Both recipes: LoRA r=8, alpha 16, dropout 0.05 on q/v.
Notebook recipe: plain Trainer on the same tokenized rows padded to the longest in the batch, gradient
checkpointing, full-vocabulary logits at every position and the model's own loss, batch 2.

Counts real (non-pad) tokens per second after warm-up steps and the useful FLOPs of the batches in the timed window,
the same formula for both recipes (work that a recipe does needlessly, such as recomputing activations, padding or
logits at prompt positions, does not count):
    4 x T x (base linear parameters, embeddings and LM head excluded)  frozen weights: forward + input gradients
  + 6 x T x (LoRA parameters)                                          forward + input and weight gradients
  + 4 x (label tokens) x (LM head parameters)                          the loss needs logits only there
  + 6 x layers x hidden x T^2 per sequence                             causal attention scores and values, fwd + bwd
and reports them over the matmul FLOP/s measured in the same run (CPU fp32 2048^3, GPU bf16 8192^3).
`--only fm5` / `--only notebook` run one recipe (one process each keeps GPU runs independent).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LLAMA_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True, max_position_embeddings=131072,
                rope_theta=500000.0)


def lora_config():
    from peft import LoraConfig

    return LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")


def matmul_flops(device: str, dtype) -> float:
    """The machine's matmul FLOP/s: the best of several timed square products (CPU fp32 2048^3, GPU 8192^3)."""
    import torch

    n, reps, trials = (2048, 3, 5) if device == "cpu" else (8192, 20, 5)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = 0.0
    for _ in range(trials + 1):  # the first trial warms up
        if device != "cpu":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t))
    return best


def sequence_lengths(batch) -> list[int]:
    """Real tokens of each sequence: from the attention mask, or from position_ids restarts (padding-free rows)."""
    if batch.get("attention_mask") is not None:
        return batch["attention_mask"].sum(-1).tolist()
    starts = (batch["position_ids"].flatten() == 0).nonzero().flatten().tolist() + [batch["position_ids"].numel()]
    return [b - a for a, b in zip(starts, starts[1:])]


class FlopCounter:
    """Wraps a collator: records the real tokens and the useful FLOPs of every batch it builds, in order."""

    def __init__(self, collator, model_config, linear_params: int, lora_params: int):
        self.collator, self.tokens, self.flops = collator, [], []
        self.linear, self.lora = linear_params, lora_params
        self.head = model_config.vocab_size * model_config.hidden_size
        self.attention = 6 * model_config.num_hidden_layers * model_config.hidden_size

    def __call__(self, examples):
        batch = self.collator(examples)
        lengths = sequence_lengths(batch)
        tokens = sum(lengths)
        labels = int((batch["labels"] != -100).sum())
        self.tokens.append(tokens)
        self.flops.append((4 * self.linear + 6 * self.lora) * tokens + 4 * self.head * labels
                          + self.attention * sum(n * n for n in lengths))
        return batch


def parameter_counts(model) -> tuple[int, int]:
    """(base linear parameters without embeddings and LM head, LoRA parameters)."""
    embeddings = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    linear = lora = 0
    for name, p in model.named_parameters():
        if "lora_" in name:
            lora += p.numel()
        elif p.dim() == 2 and id(p) not in embeddings:
            linear += p.numel()
    return linear, lora


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


def timed(counter: FlopCounter, timer, warmup: int) -> tuple[float, float]:
    """(real tokens/s, useful FLOP/s) over the steps after `warmup` (batch k is built before step k runs)."""
    steps = len(timer.ends)
    seconds = timer.ends[-1] - timer.ends[warmup]
    return sum(counter.tokens[warmup + 1 : steps]) / seconds, sum(counter.flops[warmup + 1 : steps]) / seconds


def load_model(name: str, device: str):
    import torch

    if name == "llama-1b-random":
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        with torch.device(device):
            model = LlamaForCausalLM(LlamaConfig(**LLAMA_1B, dtype=torch.bfloat16)).to(torch.bfloat16)
        return model
    from harness_ext.models import converted_base, load_base, packaged_smollm2

    model, _ = load_base(str(converted_base(*packaged_smollm2())))
    return model.to(device)


def build_rows(data: str, tokenizer, n: int):
    from harness_ext.data import load_split
    from training.rows import build_rows as fm5_rows

    train, _ = load_split(data)
    rows, _ = fm5_rows(train[:n], tokenizer, "open", 1024)
    return rows


def run_fm5(args, device, rows, tokenizer):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from training.stages import label_positions_only

    model = load_model(args.model, device)
    gpu = device != "cpu"
    with tempfile.TemporaryDirectory() as out:
        config = SFTConfig(output_dir=out, max_steps=args.steps, per_device_train_batch_size=args.batch,
                           learning_rate=2e-4, gradient_checkpointing=False, bf16=gpu, use_cpu=not gpu,
                           report_to="none", save_strategy="no", logging_steps=1000,
                           max_length=None if args.padding_free else 1024,  # rows are already fitted to 1024
                           disable_tqdm=True, train_sampling_strategy="group_by_length", dataloader_num_workers=0,
                           padding_free=args.padding_free, torch_compile=args.torch_compile,
                           pad_to_multiple_of=args.pad_to_multiple_of)
        if args.attn:
            model.set_attn_implementation(args.attn)
        timer = _timer()
        trainer = SFTTrainer(model=model, args=config, processing_class=tokenizer,
                             train_dataset=Dataset.from_list(rows), peft_config=lora_config(), callbacks=[timer])
        counter = FlopCounter(trainer.data_collator, model.config, *parameter_counts(trainer.model))
        trainer.data_collator = counter
        with label_positions_only():
            trainer.train()
    return timed(counter, timer, args.warmup)


def run_notebook(args, device, rows, tokenizer):
    """The notebook's Seq2SeqTrainer loop, on the same tokenized rows: pad to longest, gradient checkpointing,
    full logits and the model's own loss, batch 2 (the same number of rows as the fm5 run)."""
    import torch
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import Trainer, TrainingArguments
    from trl import SFTConfig, SFTTrainer

    model = load_model(args.model, device)
    gpu = device != "cpu"
    batch = 2
    steps = max(args.steps * args.batch // batch, args.warmup + 2)
    warmup = max(args.warmup * args.batch // batch, 1)
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
        config = TrainingArguments(output_dir=out, max_steps=steps, per_device_train_batch_size=batch,
                                   learning_rate=2e-4, gradient_checkpointing=True, bf16=gpu, use_cpu=not gpu,
                                   report_to="none", save_strategy="no", logging_steps=1000, disable_tqdm=True,
                                   remove_unused_columns=False, dataloader_num_workers=0)
        counter, timer = FlopCounter(collate, model.config, *parameter_counts(peft_model)), _timer()
        Trainer(model=peft_model, args=config, train_dataset=data, data_collator=counter, callbacks=[timer]).train()
    return timed(counter, timer, warmup)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--model", choices=["smollm2", "llama-1b-random"], default="smollm2")
    p.add_argument("--tokenizer", help="tokenizer folder for the rows (default: the packaged SmolLM2's)")
    p.add_argument("--steps", type=int, default=24, help="fm5-recipe steps (the first --warmup not timed); the "
                                                         "notebook recipe gets the same number of rows")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rows", type=int, default=64)
    p.add_argument("--batch", type=int, help="fm5-recipe sequences per step (default: 2 on CPU, 16 on GPU)")
    p.add_argument("--padding_free", action="store_true", help="fm5 recipe: one flat row per batch, no padding")
    p.add_argument("--attn", help="attention implementation for the fm5 recipe, e.g. sdpa, flex_attention")
    p.add_argument("--torch_compile", action="store_true", help="fm5 recipe: torch.compile the model")
    p.add_argument("--pad_to_multiple_of", type=int, help="fm5 recipe: fewer distinct shapes (kernel caches, compile)")
    p.add_argument("--no_cudnn_sdpa", action="store_true",
                   help="keep sdpa off its cuDNN backend, which builds a new graph for every new shape")
    p.add_argument("--only", choices=["both", "fm5", "notebook"], default="both")
    args = p.parse_args()
    if args.steps < args.warmup + 2:
        p.error(f"--steps {args.steps}: needs at least --warmup + 2 = {args.warmup + 2} steps to time")
    if args.only == "fm5":  # as training.sft does; a process that also runs the notebook recipe keeps the default
        os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.no_cudnn_sdpa:
        torch.backends.cuda.enable_cudnn_sdp(False)
    args.batch = args.batch or (2 if device == "cpu" else 16)
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    peak = matmul_flops(device, dtype)
    print(f"device {device} ({torch.cuda.get_device_name() if device == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"measured matmul {peak / 1e12:.3f} TFLOP/s ({dtype}); model {args.model}")
    from harness_ext.models import load_tokenizer, packaged_smollm2

    tokenizer = load_tokenizer(args.tokenizer) if args.tokenizer else load_tokenizer(*packaged_smollm2())
    rows = build_rows(args.data, tokenizer, args.rows)
    results = {}
    if args.only in ("both", "fm5"):
        knobs = [f"batch {args.batch}"] + [name for name, on in (
            ("padding-free", args.padding_free), (args.attn, args.attn), ("compiled", args.torch_compile),
            (f"pad to {args.pad_to_multiple_of}", args.pad_to_multiple_of), ("no cuDNN sdpa", args.no_cudnn_sdpa)) if on]
        results[f"fm5 recipe ({', '.join(knobs)})"] = run_fm5(args, device, rows, tokenizer)
    if args.only in ("both", "notebook"):
        results["notebook recipe (batch 2)"] = run_notebook(args, device, rows, tokenizer)
    for name, (tps, flops) in results.items():
        print(f"{name}: {tps:9.1f} real tokens/s, {flops / 1e12:.3f} useful TFLOP/s = {flops / peak:6.1%} of the "
              f"measured matmul limit")
    if len(results) == 2:
        (ours, _), (theirs, _) = results.values()
        print(f"ratio {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
