"""Gemma's chat format against the Jinja chat templates Google ships with its checkpoints.

The templates below are the formats of the Gemma 2 and Gemma 3 instruction-tuned checkpoints'
tokenizer_config.json, rendered as transformers renders them (a sandboxed Jinja environment with
trim_blocks and lstrip_blocks, and a raise_exception helper). gemmacpp's format_chat must give the
same text for every conversation, and refuse what the templates refuse.
"""

import numpy as np
import pytest

from gemmacpp.chat import format_chat

jinja2 = pytest.importorskip("jinja2")
from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: E402

GEMMA2_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}")

GEMMA3_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""


class TemplateError(Exception):
    pass


def render(template, messages, add_generation_prompt):
    def raise_exception(msg):
        raise TemplateError(msg)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, bos_token="<bos>",
                                            add_generation_prompt=add_generation_prompt)


TEXTS = ["Hi", "  padded  \n", "two\nlines", "ünïcødé 🙂", "", "\t tab"]


def conversations(rich):
    rng = np.random.default_rng(0)
    for n in range(1, 5):
        for _ in range(6):
            msgs = []
            for i in range(n):
                role = "user" if i % 2 == 0 else rng.choice(["assistant", "model"])
                content = TEXTS[rng.integers(len(TEXTS))]
                if rich and rng.random() < 0.4:
                    content = [{"type": "text", "text": TEXTS[rng.integers(len(TEXTS))]}, {"type": "image"},
                               {"type": "text", "text": content}]
                msgs.append({"role": str(role), "content": content})
            yield msgs


@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_gemma2_format_equals_its_template(add_generation_prompt):
    for msgs in conversations(rich=False):
        msgs = [dict(m, role="assistant" if m["role"] == "model" else m["role"]) for m in msgs]
        want = render(GEMMA2_TEMPLATE, msgs, add_generation_prompt)
        for family in ("gemma", "gemma2"):
            assert format_chat(msgs, family=family, add_generation_prompt=add_generation_prompt) == want


@pytest.mark.parametrize("system", [None, "Be brief.", [{"type": "text", "text": " Terse. "}]])
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_gemma3_format_equals_its_template(system, add_generation_prompt):
    for msgs in conversations(rich=True):
        msgs = [dict(m, role="assistant" if m["role"] == "model" else m["role"]) for m in msgs]
        if system is not None:
            msgs = [{"role": "system", "content": system}] + msgs
        want = render(GEMMA3_TEMPLATE, msgs, add_generation_prompt)
        assert format_chat(msgs, family="gemma3", add_generation_prompt=add_generation_prompt) == want


@pytest.mark.parametrize("family,template", [("gemma2", GEMMA2_TEMPLATE), ("gemma3", GEMMA3_TEMPLATE)])
def test_refuses_what_the_template_refuses(family, template):
    bad = [
        [{"role": "assistant", "content": "first"}],
        [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    ]
    if family == "gemma2":
        bad.append([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
    for msgs in bad:
        with pytest.raises(TemplateError):
            render(template, msgs, True)
        with pytest.raises(ValueError):
            format_chat(msgs, family=family)


def test_bad_messages_are_named():
    with pytest.raises(TypeError, match="list"):
        format_chat("hello")
    with pytest.raises(TypeError, match="message 0"):
        format_chat([{"content": "no role"}])
    with pytest.raises(ValueError, match="unknown role"):
        format_chat([{"role": "tool", "content": "x"}])
    with pytest.raises(ValueError, match="type"):
        format_chat([{"role": "user", "content": [{"type": "audio"}]}])
    with pytest.raises(TypeError, match="str"):
        format_chat([{"role": "user", "content": [{"type": "text", "text": "x"}]}], family="gemma2")


def test_default_model_encodes_the_turn_markers_as_single_tokens():
    gc = pytest.importorskip("gemmacpp")
    try:
        model = gc.load()
    except ImportError:
        pytest.skip("default model not installed")
    msgs = [{"role": "user", "content": "What is 2 + 2?"}]
    ids = model.apply_chat_template(msgs, tokenize=True)
    tok = model.tokenizer
    sot, eot = tok.piece_to_id("<start_of_turn>"), tok.piece_to_id("<end_of_turn>")
    assert ids[0] == tok.bos_id and ids.count(tok.bos_id) == 1
    assert ids.count(sot) == 2 and ids.count(eot) == 1
    assert tok.decode(ids) == model.apply_chat_template(msgs)
    # generate() takes the messages directly and stops at <end_of_turn>
    text = model.generate(msgs, max_new_tokens=8)
    assert isinstance(text, str) and "<end_of_turn>" not in text


def test_gemma4_turns():
    # Gemma 4's markers: <|turn>role ... <turn|>, the system message a turn of its own.
    messages = [{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Hi\n"},
                {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
                {"role": "user", "content": "2+2?"}]
    assert format_chat(messages, family="gemma4") == (
        "<bos><|turn>system\nBe brief.<turn|>\n<|turn>user\nHi<turn|>\n<|turn>model\nHello!<turn|>\n"
        "<|turn>user\n2+2?<turn|>\n<|turn>model\n")
    assert format_chat(messages[1:2], family="gemma4", add_generation_prompt=False) == "<bos><|turn>user\nHi<turn|>\n"
    with pytest.raises(ValueError, match="alternate"):
        format_chat([{"role": "assistant", "content": "x"}], family="gemma4")
    with pytest.raises(ValueError, match="text items only"):
        format_chat([{"role": "user", "content": [{"type": "image"}]}], family="gemma4")


def test_gemma3n_turns_are_gemma3s_text_only():
    """Gemma 3n's instruction-tuned checkpoints write Gemma 3's turns (their template was not at hand:
    checked against Gemma 3's); images are refused, the model here reads text only."""
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Why?"}]
    assert format_chat(msgs, family="gemma3n") == format_chat(msgs, family="gemma3")
    with pytest.raises(ValueError, match="gemma3n models here read text only"):
        format_chat([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "?"}]}], family="gemma3n")


# ---- the checkpoint's own template (gemmacpp.chat_template) ---------------------------------

CUSTOM = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'tool' %}"
          "{{ raise_exception('no tools here') }}{% endif %}[{{ m['role'] }}] {{ m['content'] | trim }}\n"
          "{% endfor %}{% if add_generation_prompt %}[model] {% endif %}")


@pytest.fixture
def tiny(tmp_path):
    pytest.importorskip("transformers")
    import tiny_lm
    tiny_lm.build_checkpoint(str(tmp_path))
    return str(tmp_path)


def _set_template(folder, template):
    import json
    import os
    path = os.path.join(folder, "tokenizer_config.json")
    cfg = json.load(open(path)) if os.path.exists(path) else {}
    cfg["chat_template"] = template
    json.dump(cfg, open(path, "w"))


MSGS = [{"role": "user", "content": " Hi "}, {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"}]


def test_checkpoint_template_is_rendered_and_builtin_stays_the_fallback(tiny):
    import gemmacpp as gc
    assert gc.load(tiny).apply_chat_template(MSGS) == format_chat(MSGS, family="gemma3")  # no template
    _set_template(tiny, CUSTOM)
    m = gc.load(tiny)
    want = "<bos>[user] Hi\n[assistant] Hello\n[user] Bye\n[model] "
    assert m.apply_chat_template(MSGS) == want
    assert m.apply_chat_template(MSGS, add_generation_prompt=False) == want.removesuffix("[model] ")
    assert m.apply_chat_template(MSGS, chat_template="builtin") == format_chat(MSGS, family="gemma3")
    assert m.apply_chat_template(MSGS, tokenize=True) == m.tokenizer.encode(want, add_bos=False)
    with pytest.raises(ValueError, match="no tools here"):
        m.apply_chat_template([{"role": "tool", "content": "x"}])


def test_named_templates_and_the_jinja_file(tiny):
    import gemmacpp as gc
    _set_template(tiny, [{"name": "tool_use", "template": "nope"}, {"name": "default", "template": CUSTOM}])
    assert gc.load(tiny).apply_chat_template(MSGS[:1]) == "<bos>[user] Hi\n[model] "
    with open(f"{tiny}/chat_template.jinja", "w") as f:  # transformers' own file wins
        f.write("{{ bos_token }}{{ messages | length }} messages")
    assert gc.load(tiny).apply_chat_template(MSGS) == "<bos>3 messages"


def test_gemma3_template_of_a_checkpoint_gives_the_builtin_format(tiny):
    import gemmacpp as gc
    _set_template(tiny, GEMMA3_TEMPLATE)
    m = gc.load(tiny)
    system = [{"role": "system", "content": "Be brief."}] + MSGS
    for msgs in (MSGS, system):
        assert m.apply_chat_template(msgs) == format_chat(msgs, family="gemma3")


def test_gguf_chat_template_metadata(tmp_path):
    gguf = pytest.importorskip("gguf")
    from gemmacpp.chat_template import checkpoint_template
    path = str(tmp_path / "t.gguf")
    w = gguf.GGUFWriter(path, "gemma3")
    w.add_string("tokenizer.chat_template", CUSTOM)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert checkpoint_template(path) == CUSTOM
