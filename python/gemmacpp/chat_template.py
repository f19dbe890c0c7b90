"""A checkpoint's own chat template (Jinja), rendered as transformers renders it: from a Hugging
Face folder's chat_template.jinja or tokenizer_config.json "chat_template", or a GGUF file's
tokenizer.chat_template. Model.apply_chat_template uses it when the checkpoint has one (and
gemmacpp.chat's built-in Gemma format when it has none)."""
from __future__ import annotations

import os

from . import checkpoint
from ._extras import require


def checkpoint_template(path: str) -> str | None:
    """The chat template a checkpoint ships, or None."""
    if path.endswith(".gguf"):
        from . import weights
        t = weights.open(path).metadata.get("tokenizer.chat_template")
        return t if isinstance(t, str) and t.strip() else None
    folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
    try:
        with open(os.path.join(folder, "chat_template.jinja"), encoding="utf-8") as f:
            return f.read()
    except OSError:
        pass
    t = (checkpoint.read_json(path, "tokenizer_config.json") or {}).get("chat_template")
    if isinstance(t, list):  # named templates: [{"name": "default", "template": ...}, ...]
        t = next((x.get("template") for x in t if isinstance(x, dict) and x.get("name") == "default"), None)
    return t if isinstance(t, str) and t.strip() else None


def _raise_exception(message):
    raise ValueError(f"chat template: {message}")


def render(template: str, messages, *, add_generation_prompt: bool, bos_token: str,
           eos_token: str) -> str:
    """The template's text for a conversation (a sandboxed Jinja environment with trim_blocks and
    lstrip_blocks and a raise_exception helper, as transformers uses). An error the template
    raises is a ValueError."""
    jinja2 = require("jinja2", "rendering the checkpoint's chat template")
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                       extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = _raise_exception
    try:
        compiled = env.from_string(template)
    except jinja2.TemplateError as e:
        raise ValueError(f"the checkpoint's chat template does not parse: {e}") from e
    return compiled.render(messages=list(messages), add_generation_prompt=add_generation_prompt,
                           bos_token=bos_token, eos_token=eos_token)
