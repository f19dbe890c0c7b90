"""Gemma's chat format for instruction-tuned checkpoints.

    <bos><start_of_turn>user
    {user text}<end_of_turn>
    <start_of_turn>model
    {model text}<end_of_turn>
    <start_of_turn>model

Roles alternate user/model ("assistant" is written "model"); message text is stripped of leading
and trailing whitespace. Gemma 1 and 2 have no system role; Gemma 3 puts a leading system message
in front of the first user turn, separated by a blank line, and writes an image item of a message's
content list as <start_of_image> (the processor later expands it into the image's soft tokens).
This is what the chat templates shipped with Google's checkpoints render, without needing Jinja.

Gemma 4 writes turns between <|turn> and <turn|>, and the system message as a turn of its own:

    <bos><|turn>system
    {system text}<turn|>
    <|turn>user
    {user text}<turn|>
    <|turn>model

(text conversations only: no images, tool calls or thinking channel). No Gemma 4 checkpoint's
template was at hand to check this against; the turn markers are those of Gemma 4's tokenizer.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence


def is_chat(prompt) -> bool:
    """Whether a prompt is a conversation (a non-empty list of message dicts), not text or ids."""
    return isinstance(prompt, (list, tuple)) and bool(prompt) and all(isinstance(m, dict) for m in prompt)


def format_chat(messages: Sequence[Mapping], *, family: str = "gemma3",
                add_generation_prompt: bool = True, bos: str = "<bos>") -> str:
    """The prompt text of a conversation: a list of {"role": "system"|"user"|"assistant"|"model",
    "content": str or [{"type": "text", "text": ...}, {"type": "image"}, ...]}."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError("chat messages must be a list of {'role': ..., 'content': ...} dicts")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise TypeError(f"chat message {i} must be a dict with 'role' and 'content', got {m!r}")
    messages = list(messages)
    if family == "gemma4":
        return _format_gemma4(messages, add_generation_prompt, bos)
    prefix = ""
    if messages and messages[0]["role"] == "system":
        if family in ("gemma", "gemma2"):
            raise ValueError(f"{family} checkpoints have no system role; put it in the first user turn")
        prefix = _content(messages[0]["content"], family, strip=False, first_text_only=True) + "\n\n"
        messages = messages[1:]
    out = [bos]
    for i, m in enumerate(messages):
        role = {"assistant": "model"}.get(m["role"], m["role"])
        if role not in ("user", "model"):
            raise ValueError(f"chat message {i}: unknown role {m['role']!r} (system, user, assistant)")
        if (role == "user") != (i % 2 == 0):
            raise ValueError("chat roles must alternate user/assistant/user/assistant/...")
        text = _content(m["content"], family, strip=True)
        out.append(f"<start_of_turn>{role}\n{prefix if i == 0 else ''}{text}<end_of_turn>\n")
    if add_generation_prompt:
        out.append("<start_of_turn>model\n")
    return "".join(out)


def _format_gemma4(messages, add_generation_prompt: bool, bos: str) -> str:
    out = [bos]
    if messages and messages[0]["role"] == "system":
        out.append(f"<|turn>system\n{_text_only(messages[0]['content'], 0)}<turn|>\n")
        messages = messages[1:]
    for i, m in enumerate(messages):
        role = {"assistant": "model"}.get(m["role"], m["role"])
        if role not in ("user", "model"):
            raise ValueError(f"chat message {i}: unknown role {m['role']!r} (system, user, assistant)")
        if (role == "user") != (i % 2 == 0):
            raise ValueError("chat roles must alternate user/assistant/user/assistant/...")
        out.append(f"<|turn>{role}\n{_text_only(m['content'], i)}<turn|>\n")
    if add_generation_prompt:
        out.append("<|turn>model\n")
    return "".join(out)


def _text_only(content, i: int) -> str:
    """A Gemma 4 message's text, stripped: a str, or a list of text items."""
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, bytes) or not isinstance(content, Sequence):
        raise TypeError(f"chat content must be a str or a list of items, got {type(content).__name__}")
    parts = []
    for item in content:
        if not isinstance(item, Mapping) or item.get("type") != "text":
            raise ValueError(f"chat message {i}: item {item!r}: gemma4 conversations take text items only")
        parts.append(item["text"].strip())
    return "".join(parts)


def _content(content, family: str, *, strip: bool, first_text_only: bool = False) -> str:
    if isinstance(content, str):
        return content.strip() if strip else content
    if family in ("gemma", "gemma2") or isinstance(content, bytes) or not isinstance(content, Sequence):
        raise TypeError(f"chat content must be a str{'' if family in ('gemma', 'gemma2') else ' or a list of items'}, "
                        f"got {type(content).__name__}")
    if first_text_only:  # the system message: its first item's text, as Gemma 3's template does
        return content[0]["text"]
    parts = []
    for item in content:
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind == "image" and family == "gemma3n":
            raise ValueError(f"chat content item {item!r}: gemma3n models here read text only")
        if kind == "image":
            parts.append("<start_of_image>")
        elif kind == "text":
            parts.append(item["text"].strip() if strip else item["text"])
        else:
            raise ValueError(f"chat content item {item!r}: type must be 'text' or 'image'")
    return "".join(parts)
