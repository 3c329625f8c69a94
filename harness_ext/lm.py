"""The lm-eval model `fm5 eval` uses: lm-eval's HF backend, with loglikelihood requests that share a prompt scored
from one pass over that prompt.

lm-eval's `HFLM` runs every (context, continuation) request as one full forward pass, so a probe question's prompt
(an open-book passage of ~250 tokens) is encoded once per option, once more for the whitespace request, and a QA
question's prompt twice. Here the requests are grouped by the exact tokens before their continuation (lm-eval's own
encoding and left truncation: `(context + continuation)[-(max_length + 1):]`), the shared prefix is run once with
`use_cache=True`, and the continuations of the group are scored in batches on a copy of its key/value cache. The
log-probabilities are those of the same tokens at the same positions; they differ from `HFLM`'s only by float
rounding (tests/test_lm.py: within 1e-4 relative, same greedy flags). Everything else (generation, the request
format, the outputs) is `HFLM`'s; stock `lm_eval` keeps using `HFLM` itself.
"""

from __future__ import annotations

import copy
import warnings

from lm_eval.models.huggingface import HFLM


class PrefixSharingHFLM(HFLM):
    def join_process_group(self) -> None:
        """Data-parallel evaluation (torchrun, accelerate launch): this process is one rank of the initialised
        torch.distributed group; lm-eval shards each task's documents by rank and gathers the samples on rank 0.
        (HFLM leaves a model object it is given single-process, and gathers through an accelerate Accelerator.)"""
        import torch.distributed as dist

        self._rank, self._world_size = dist.get_rank(), dist.get_world_size()

    def all_gather(self, tensor):
        if self.world_size <= 1:
            return tensor
        import torch
        import torch.distributed as dist

        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.stack(parts) if tensor.dim() == 0 else torch.cat(parts)

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
        if self.backend != "causal":
            return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
        import torch
        from tqdm import tqdm

        groups: dict[tuple[int, ...], list[tuple[int, object, list[int]]]] = {}
        for i, (request_str, context_enc, continuation_enc) in enumerate(requests):
            assert context_enc and continuation_enc and len(continuation_enc) <= self.max_length
            full = (context_enc + continuation_enc)[-(self.max_length + 1) :]
            groups.setdefault(tuple(full[: len(full) - len(continuation_enc)]), []).append(
                (i, request_str, continuation_enc))
        batch = override_bs or (int(self.batch_size) if str(self.batch_size).isdigit() else 8)
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        pbar = tqdm(total=len(requests), disable=(disable_tqdm or self.rank != 0),
                    desc="Running loglikelihood requests (shared prompts)")
        autocast = torch.autocast(device_type=self.device.type, dtype=self.mixed_precision_dtype,
                                  enabled=self.mixed_precision_dtype is not None)
        with torch.no_grad(), autocast, warnings.catch_warnings():
            # transformers 5.x renames `past_key_values` to `cache`; the old name works across the supported range
            warnings.filterwarnings("ignore", message=".*past_key_values.*deprecated", category=FutureWarning)
            for prefix, items in sorted(groups.items(), key=lambda kv: -len(kv[0])):
                out = self.model(torch.tensor([prefix], device=self.device), use_cache=True)
                first = torch.log_softmax(out.logits[0, -1], dim=-1, dtype=self.softmax_dtype)  # predicts cont[0]
                items = sorted(items, key=lambda it: -len(it[2]))
                for start in range(0, len(items), batch):
                    chunk = items[start : start + batch]
                    longest = len(chunk[0][2]) - 1
                    rest = None
                    if longest > 0:  # feed cont[:-1] after the cached prefix (right-padded; causal: pads unseen)
                        cache = copy.deepcopy(out.past_key_values)
                        if len(chunk) > 1:
                            cache.batch_repeat_interleave(len(chunk))
                        inp = torch.tensor([c[:-1] + [c[0]] * (longest - len(c) + 1) for _, _, c in chunk],
                                           device=self.device)
                        logits = self.model(inp, past_key_values=cache, use_cache=True).logits
                        rest = torch.log_softmax(logits, dim=-1, dtype=self.softmax_dtype)
                    for j, (i, request_str, cont) in enumerate(chunk):
                        steps = first.unsqueeze(0) if rest is None else \
                            torch.cat([first.unsqueeze(0), rest[j, : len(cont) - 1]], dim=0)  # [len(cont), vocab]
                        target = torch.tensor(cont, device=self.device)
                        answer = (float(steps.gather(1, target.unsqueeze(1)).sum()),
                                  bool((steps.argmax(dim=-1) == target).all()))
                        results[i] = answer
                        if request_str is not None:
                            self.cache_hook.add_partial("loglikelihood", request_str, answer)
                        pbar.update(1)
        pbar.close()
        return results
