"""The one prompt builder. Training rows and lm-eval requests are both built here, so they cannot drift apart.

A prompt is a list of chat messages: a system turn (the instruction, plus the passage for open-book) and a user turn
(the question). With a chat template the model's own template renders them; without one, ``render_plain`` gives a
plain-text form. No BOS or other special token is ever written into the text: the tokenizer adds its own.
"""

from __future__ import annotations

VARIANTS = ("open", "closed")
INSTRUCTION = "You are an assistant for the US Army field manual FM 5-0. Answer the question concisely."

# Llama-3.x chat templates write "Today Date: ..." into the system turn unless `date_string` is given; pin it so
# that scores do not change from day to day. Templates that do not use the variable ignore it.
PINNED_DATE = "26 Jul 2024"
CHAT_TEMPLATE_KWARGS = {"date_string": PINNED_DATE}


def system_text(row: dict, variant: str) -> str:
    if variant == "open":
        return f"{INSTRUCTION}\n\nPassage:\n{row['passage'].strip()}"
    if variant == "closed":
        return INSTRUCTION
    raise ValueError(f"unknown prompt variant {variant!r}; expected one of {VARIANTS}")


def build_messages(row: dict, variant: str, system_instruction: str | None = None) -> list[dict]:
    """System + user turns for one QA row. ``system_instruction`` (lm-eval's flag) is put before the system text."""
    system = system_text(row, variant)
    if system_instruction:
        system = f"{system_instruction}\n\n{system}"
    return [{"role": "system", "content": system}, {"role": "user", "content": row["question"].strip()}]


def render_plain(messages: list[dict]) -> str:
    """Plain-text rendering for models without a chat template. Ends with a newline, like chat templates do, so the
    answer starts at a token boundary in both forms."""
    system, user = messages[0]["content"], messages[1]["content"]
    return f"{system}\n\nQuestion: {user}\nAnswer:\n"


def completion_text(row: dict) -> str:
    """The target the model is trained on and scored against."""
    return row["answer"].strip()


def render_prompt(tokenizer, messages: list[dict], chat: bool = True) -> str:
    """The text the model sees before its answer: the chat template (generation prompt added, date pinned) or the
    plain form."""
    if chat and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **CHAT_TEMPLATE_KWARGS
        )
    return render_plain(messages)
