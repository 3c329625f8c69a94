"""Training rows: conversational prompt/completion pairs from the shared prompt builder (the same prompts the
tasks score), long passages shortened (never the question or the answer), the mixed schedule's rows tokenized
exactly as TRL would, and padding-free rows cut at max_length as TRL cuts padded ones."""

from __future__ import annotations

from harness_ext import prompts
from harness_ext.errors import UsageError


def _full_length(tokenizer, row: dict, variant: str) -> int:
    messages = prompts.build_messages(row, variant) + [{"role": "assistant", "content": prompts.completion_text(row)}]
    return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                             **prompts.CHAT_TEMPLATE_KWARGS)["input_ids"])


def fit_passage(tokenizer, row: dict, variant: str, max_length: int | None) -> tuple[dict, bool]:
    """Shorten the passage (never the question or the answer) until the row fits max_length tokens; a row that cannot
    fit (a closed-book row, or the question and answer alone) is an error, not a row TRL would cut short at the end,
    its answer's end token lost from the labels."""
    if not max_length:
        return row, False
    excess = _full_length(tokenizer, row, variant) - max_length
    if excess <= 0:
        return row, False
    if variant != "open":
        raise UsageError(f"row {row['id']}: question and answer alone exceed max_length={max_length} "
                         f"({excess + max_length} tokens)")
    ids = tokenizer(row["passage"], add_special_tokens=False)["input_ids"]
    for _ in range(8):
        keep = max(len(ids) - excess - 4, 0)
        ids = ids[:keep]
        row = dict(row, passage=tokenizer.decode(ids))
        excess = _full_length(tokenizer, row, variant) - max_length
        if excess <= 0 or keep == 0:
            break
    if excess > 0:
        raise UsageError(f"row {row['id']}: question and answer alone exceed max_length={max_length}")
    return row, True


def build_rows(rows: list[dict], tokenizer, variant: str, max_length: int | None) -> tuple[list[dict], int]:
    """Conversational prompt/completion rows (TRL's format) from the shared prompt builder."""
    out, shortened = [], 0
    variants = ("open", "closed") if variant == "mixed" else (variant,)
    for row in rows:
        for v in variants:
            fitted, cut = fit_passage(tokenizer, row, v, max_length)
            shortened += cut
            out.append({
                "id": row["id"],
                "prompt": prompts.build_messages(fitted, v),
                "completion": [{"role": "assistant", "content": prompts.completion_text(fitted)}],
                "chat_template_kwargs": dict(prompts.CHAT_TEMPLATE_KWARGS),
            })
    return out, shortened


def prepared_rows(built: list[dict], texts: list[str], tokenizer) -> list[dict]:
    """Rows TRL takes as already prepared, `{"input_ids", "labels"}`, as TRL 1.16 prepares them itself: a
    prompt/completion row (build_rows) is its chat-template tokens with the prompt's labels -100; a document text is
    its tokens and the end token, every one a label. The mixed schedule needs this because TRL types a dataset by its
    first row, so chat rows and plain text share one dataset only once tokenized (tests/test_training.py checks
    these rows against TRL's own preparation)."""
    out = []
    for row in built:
        kwargs = row["chat_template_kwargs"]
        prompt = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True,
                                               return_dict=True, **kwargs)["input_ids"]
        full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True, return_dict=True,
                                             **kwargs)["input_ids"]
        n = next((i for i, (a, b) in enumerate(zip(prompt, full)) if a != b), min(len(prompt), len(full)))
        out.append({"input_ids": full, "labels": [-100] * n + full[n:]})
    for text in texts:
        ids = tokenizer(text=text if text.endswith(tokenizer.eos_token) else text + tokenizer.eos_token)["input_ids"]
        out.append({"input_ids": ids, "labels": list(ids)})
    return out


def for_trl(config, rows: list[dict], tokenizer) -> tuple[object, list[dict]]:
    """(SFTConfig, rows) as SFTTrainer takes them. With padding_free and no packing, TRL cuts no row at max_length and
    refuses one ("provide already truncated inputs"), so the rows go over cut as TRL cuts them otherwise: plain texts
    tokenized as TRL does (prepared_rows), every tokenized row cut to max_length by truncation_mode, the ones left
    without a label dropped, and the config's max_length None. Chat rows pass unchanged: build_rows made them fit."""
    import dataclasses

    if not config.padding_free or config.packing or config.max_length is None:
        return config, rows
    limit = config.max_length
    cut = slice(None, limit) if config.truncation_mode == "keep_start" else slice(-limit, None)
    if rows and "text" in rows[0]:
        rows = prepared_rows([], [r["text"] for r in rows], tokenizer)
    if rows and "input_ids" in rows[0]:
        rows = [{"input_ids": r["input_ids"][cut], "labels": r["labels"][cut]} for r in rows]
        rows = [r for r in rows if any(t != -100 for t in r["labels"])]
    return dataclasses.replace(config, max_length=None), rows
