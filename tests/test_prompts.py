import datetime

import pytest

from harness_ext import prompts

ROW = {"id": "x", "passage": "  The MDMP has seven steps.  ", "question": "How many steps? ", "answer": "Seven."}


def test_open_and_closed_turns():
    open_msgs = prompts.build_messages(ROW, "open")
    closed_msgs = prompts.build_messages(ROW, "closed")
    assert [m["role"] for m in open_msgs] == ["system", "user"] == [m["role"] for m in closed_msgs]
    assert "The MDMP has seven steps." in open_msgs[0]["content"]
    assert "MDMP" not in closed_msgs[0]["content"] and closed_msgs[0]["content"] == prompts.INSTRUCTION
    assert open_msgs[1]["content"] == closed_msgs[1]["content"] == "How many steps?"
    with pytest.raises(ValueError):
        prompts.build_messages(ROW, "mixed")


def test_system_instruction_goes_first_in_the_system_turn():
    msgs = prompts.build_messages(ROW, "closed", system_instruction="Be brief.")
    assert msgs[0]["content"].startswith("Be brief.\n\n") and len(msgs) == 2


def test_plain_prompt_is_well_formed_and_has_no_special_tokens():
    text = prompts.render_plain(prompts.build_messages(ROW, "open"))
    assert text.endswith("Question: How many steps?\nAnswer:\n")
    assert "<|" not in text and "<s>" not in text


def _bos_count(tokenizer, text):
    """Encode as lm-eval's HF backend does: no special tokens added when the text already starts with BOS."""
    from lm_eval.models.utils import has_bos_prefix

    add = not has_bos_prefix(text, tokenizer.bos_token)
    ids = tokenizer(text, add_special_tokens=add)["input_ids"]
    return ids.count(tokenizer.bos_token_id), ids


def test_llama3_template_single_bos_and_pinned_date(llama3_tokenizer):
    msgs = prompts.build_messages(ROW, "open")
    text = prompts.render_prompt(llama3_tokenizer, msgs)
    today = datetime.date.today().strftime("%d %b %Y")
    assert f"Today Date: {prompts.PINNED_DATE}" in text and (today == prompts.PINNED_DATE or today not in text)
    unpinned = llama3_tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert f"Today Date: {today}" in unpinned  # the template's own behaviour that pinning removes
    count, ids = _bos_count(llama3_tokenizer, text)
    assert count == 1 and ids[0] == llama3_tokenizer.bos_token_id
    assert text.count("<|begin_of_text|>") == 1  # written by the template, never by us
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_chatml_template_sends_our_system_turn(smollm2):
    _, tokenizer, _ = smollm2
    text = prompts.render_prompt(tokenizer, prompts.build_messages(ROW, "closed"))
    assert "SmolLM" not in text and text.startswith("<|im_start|>system\n" + prompts.INSTRUCTION)
    assert text.endswith("<|im_start|>assistant\n")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[:2] != [tokenizer.bos_token_id] * 2 and ids.count(tokenizer.bos_token_id) == 3  # one per turn marker
