"""Model: a loaded Gemma 1/2/3 or RecurrentGemma (Griffin) text model, which takes images too for
Gemma 3 and PaliGemma checkpoints (gemmacpp.load, in loader.py, builds it).

    model = gemmacpp.load("path/to/hf-checkpoint")   # folder with config.json + *.safetensors
    model = gemmacpp.load("gemma-3-270m-q4_k_m.gguf") # config from the GGUF metadata
    model.config["layers"][0]                          # {"type": "local", "window": 512, ...}
    logits = model.forward([[2, 651, 6037]])          # float32 [B, T, vocab]
    cache = model.new_cache()                          # incremental decoding
    model.forward(prompt_ids, cache=cache); model.forward([next_id], cache=cache)
    model.generate("The capital of France is", max_new_tokens=16)

Weights stay memory-mapped in their stored dtype (f32/f16/bf16, or GGML blocks read in place by
the quantized kernels); activations are float32.
"""
from __future__ import annotations

import contextlib

import numpy as np

from . import _checks, generate
from ._defaults import DEFAULT_MAX_LEN
from .chat import format_chat, is_chat
from .eval import scoring
from .hooks import ActivationCache, HookedMixin
from .lens import LensMixin, legacy_qk_names
from .sae.splice import attach as attach_saes
from .tokenizer import CheckpointTokenizer
from .tokens import token_batch
from .vision import split_hooks


class Model(HookedMixin, LensMixin):
    """A loaded Gemma text model; see gemmacpp.load. TransformerLens-style attributes and helpers
    (cfg, W_E, run_with_hooks, to_tokens, ...) come from gemmacpp.lens.LensMixin."""

    # Deprecated, for one release: True makes the exact names blocks.{i}.attn.hook_q / hook_k mean
    # what they meant before 0.2 (after the QK-norm; now hook_q_normed / hook_k_normed).
    legacy_qk_hook_names = False
    # "float32" or "int8": how quantized projections treat their inputs (gemmacpp.load's
    # activations; set there).
    activations = "float32"

    def __init__(self, core_model, images=None):
        self._m = core_model
        self._config = None
        self._tokenizer = CheckpointTokenizer(core_model.path, core_model)  # fixed at load
        self._images = images  # vision.ImageInputs of Gemma 3 / PaliGemma checkpoints

    @property
    def config(self) -> dict:
        """family, sizes, norm eps, softcaps, query_pre_attn_scalar, qk_norm, sandwich_norms,
        embed_scale, and per layer: type (local/global), window, rope_base, rope_scale."""
        if self._config is None:
            self._config = self._m.config()
        return self._config

    @property
    def path(self) -> str:
        return self._m.path

    @property
    def tokenizer(self):
        """The model's tokenizer: from a GGUF file's metadata, or a HF folder's tokenizer.json."""
        t = self._tokenizer  # a CheckpointTokenizer, or any tokenizer put in its place
        return t.get() if isinstance(t, CheckpointTokenizer) else t

    def new_cache(self, batch: int = 1, max_len: int | None = None):
        """An empty KV cache for `batch` sequences of up to max_len positions (default 8192).
        Global layers hold max_len positions; sliding-window layers only their window (a ring).
        RecurrentGemma caches (RG-LRU and conv states, attention rings) have one size from the
        start, whatever the length; there max_len does not bound it. Pass it to
        forward(tokens, cache=...) to continue the sequences it holds."""
        batch = _checks.integer(batch, "new_cache: batch", lo=1, hi=_checks.MAX_COUNT)
        max_len = _checks.integer(DEFAULT_MAX_LEN if max_len is None else max_len, "new_cache: max_len",
                                  lo=1, hi=_checks.MAX_COUNT)
        return self._m.new_cache(batch, max_len)

    def forward(self, tokens, *, cache=None, lengths=None, last_only: bool = False,
                images=None) -> np.ndarray:
        """Logits [B, T, vocab] float32 for tokens: a list of ints (one sequence), a list of lists
        (a batch; rows of different lengths are right-padded), or an int array [T] or [B, T].
        lengths: the number of real tokens of each row of a padded array (the rest is ignored).
        Logits of padding positions are zero. Each row is its own sequence at positions 0, 1, ...;
        with a cache, row b continues cached sequence b at position cache.lengths[b] (and is
        appended to it). last_only: logits [B, 1, vocab] of each row's last real token only.
        images (Gemma 3 / PaliGemma): PIL images or uint8 HWC arrays (or float pixels
        [N, 3, S, S]) filling the image tokens in order; gemmacpp.vision.image_inputs describes
        the layout."""
        # Vision-language checkpoints: image soft tokens, bidirectional spans, position offset.
        vision_kw, vocab = {}, self.config["vocab_size"]
        if self._images is not None:
            vision_kw["position_offset"] = self._images.position_offset
            if images is not None:  # the image token id may lie past the vocabulary
                vocab = max(vocab, self._images.image_token_id + 1)
        elif images is not None:
            raise ValueError("images: this model has no vision tower")
        arr, row_lengths = token_batch(tokens, vocab, lengths)
        hooks, vision_hooks = self._hook_dispatch(), None
        if self._images is not None:  # the tower's hooks go to its encode, the rest to the text
            vision_hooks, hooks = split_hooks(hooks)
        if images is not None:
            vision_kw.update(self._images.forward_inputs(arr, row_lengths, images, hooks=vision_hooks))
        if hooks is not None:  # only models with hook points take the argument
            vision_kw["hooks"] = hooks
        return self._m.forward(arr, cache, row_lengths, bool(last_only), **vision_kw)

    def encode_image(self, images, *, preprocess: bool = True) -> np.ndarray:
        """Soft tokens [N, tokens_per_image, d] float32 that images become in the text model (PIL
        images / uint8 HWC arrays, or float pixels [N, 3, S, S] in [-1, 1] with preprocess=False)."""
        if self._images is None:
            raise ValueError("encode_image: this model has no vision tower")
        return self._images.soft_tokens(images, preprocess, split_hooks(self._hook_dispatch())[0])

    def apply_chat_template(self, messages, *, add_generation_prompt: bool = True,
                            tokenize: bool = False, chat_template: str | None = None):
        """The prompt of a conversation: text starting with <bos>, or its token ids with
        tokenize=True. Rendered with the checkpoint's own chat template (Jinja, as transformers
        renders it; needs jinja2, the chat extra) where it has one, else with gemmacpp's built-in
        Gemma format (gemmacpp.chat). chat_template: "builtin" for the built-in format, or a Jinja
        template string. generate() takes the messages directly."""
        from . import chat_template as templates
        if chat_template is None:
            if not hasattr(self, "_chat_template"):
                self._chat_template = templates.checkpoint_template(self.path)
            chat_template = self._chat_template
        if chat_template is None or chat_template == "builtin":
            text = format_chat(messages, family=self.config["family"],
                               add_generation_prompt=add_generation_prompt)
        else:
            tok = self.tokenizer
            text = templates.render(chat_template, messages, add_generation_prompt=add_generation_prompt,
                                    bos_token=tok.id_to_piece(tok.bos_id),
                                    eos_token=tok.id_to_piece(tok.eos_id))
        return self.tokenizer.encode(text, add_bos=False) if tokenize else text

    def generate(self, prompt, *, max_new_tokens: int = 64, temperature: float = 0.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 stop=None, stream: bool = False, images=None, pan_and_scan: bool = False):
        """Continue `prompt` (a str, tokenized with BOS; a chat as a list of {"role", "content"}
        messages, formatted with apply_chat_template; or a list of token ids). Greedy at
        temperature 0, else sampled (top_k/top_p filtered; seed makes it reproducible). Ends at
        EOS or the end of a turn (<end_of_turn>, Gemma 4's <turn|>), after max_new_tokens, or
        before the first `stop` string (not included). Returns the generated text, or with stream=True an iterator of text pieces.
        images (Gemma 3 / PaliGemma): a list of images for the prompt's image placeholders
        (<start_of_image> for Gemma 3); see gemmacpp.vision.ImageInputs.expand_prompt.
        pan_and_scan (Gemma 3): elongated images also go in as crops, as the processor does."""
        prefill_kwargs = None
        if images is not None:
            if self._images is None:
                raise ValueError("images: this model has no vision tower")
            if is_chat(prompt):  # image items became <start_of_image> placeholders in the text
                prompt = self.apply_chat_template(prompt).removeprefix("<bos>")
            images = list(images) if isinstance(images, (list, tuple)) else [images]
            num_crops = None
            if pan_and_scan:
                images, num_crops = self._images.pan_and_scan(images)
            prompt = self._images.expand_prompt(prompt, len(num_crops or images), self.tokenizer
                                                if isinstance(prompt, str) else None, num_crops)
            prefill_kwargs = {"images": images}  # the prompt's forward; later steps have none
        it = generate.generate(self, prompt, max_new_tokens=max_new_tokens,
                               temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                               stop=stop, prefill_kwargs=prefill_kwargs)
        return it if stream else "".join(it)

    # ---- scoring (gemmacpp.eval.scoring) ----

    def loglikelihood(self, requests, *, batch_size: int = 16, shared_prefix: bool = True,
                      max_length: int | None = None, progress=None) -> list[tuple[float, bool]]:
        """(sum of log-probs of the continuation, whether greedy decoding gives it) for each
        (context, continuation) request, in order; each part a str or a list of token ids.
        Strings are tokenized as lm-evaluation-harness does (BOS, the split by token ids).
        Requests with the same context run it once (shared_prefix). max_length: the model's
        window (default 8192): longer requests lose their oldest context tokens."""
        return scoring.loglikelihood(self, requests, batch_size=batch_size,
                                     shared_prefix=shared_prefix, max_length=max_length,
                                     progress=progress)

    def loglikelihood_rolling(self, texts, *, max_length: int | None = None, context_len: int = 1,
                              batch_size: int = 16, progress=None) -> list[float]:
        """The log-likelihood of each whole text (a str, or the list of token ids to predict),
        the first token predicted from BOS; texts longer than max_length (default 8192) are
        scored in disjoint windows, each seeing context_len tokens before it (the harness's)."""
        return scoring.loglikelihood_rolling(self, texts, max_length=max_length,
                                             context_len=context_len, batch_size=batch_size,
                                             progress=progress)

    # ---- hooks: read and edit activations (HookedMixin.hooks, docs/hooks.md) ----

    def hook_names(self) -> list[str]:
        """Every hook point of the model, in the order a forward reaches them: hook_embed,
        blocks.{i}.hook_resid_pre, blocks.{i}.attn.hook_q ... blocks.{i}.hook_resid_post,
        ln_final.hook_normalized, hook_logits (TransformerLens names; table in docs/hooks.md);
        with a vision tower, its points come first (vision.blocks.{i}.hook_resid_post,
        vision.hook_out); inside model.saes(...), each SAE's points follow its output point."""
        if getattr(self, "_hook_name_list", None) is None:
            vision = list(self._images.vision.hook_names()) if self._images is not None else []
            self._hook_name_list = vision + list(self._m.hook_names())
        return self._with_stage_names(list(self._hook_name_list))

    def saes(self, saes, *, splice: bool = True, error_term: bool = False):
        """Context manager: while active, the given sparse autoencoders and transcoders
        (gemmacpp.sae.SAE; a {hook: sae} dict, a list or one SAE) run inside every forward, each
        offering hook points "<hook_out>.sae.hook_sae_input / _acts_pre / _acts_post / _recons /
        _error / _output" (in hook_names(), for hooks() and run_with_cache). splice: the activation
        at the SAE's output point becomes its output (its reconstruction; with error_term, plus
        the error term, which leaves the forward bitwise unchanged until a hook edits the SAE's
        points). splice=False only reads. See gemmacpp.sae.splice and docs/sae.md."""
        return attach_saes(self, saes, splice=splice, error_term=error_term)

    def hooks(self, hooks) -> contextlib.AbstractContextManager:
        """HookedMixin.hooks (see there), after the deprecated legacy_qk_hook_names renaming."""
        return super().hooks(legacy_qk_names(self, hooks))

    def run_with_cache(self, tokens, *, names=None, names_filter=None, cache=None, lengths=None,
                       last_only: bool = False, images=None) -> tuple[np.ndarray, ActivationCache]:
        """(logits, activations): forward(tokens, ...) that also records the activations at the
        hook points selected by `names` (or TransformerLens' names_filter; None: all of them; a
        name, a glob, a predicate or a list) as an ActivationCache {name: float32 array}, after
        any active hooks have edited them. Asking for attention scores or patterns makes those
        layers take a plain attention path that materialises them (results equal to float32
        rounding)."""
        if names is not None and names_filter is not None:
            raise TypeError("run_with_cache: give names or names_filter, not both")
        names = names if names_filter is None else names_filter
        legacy = self.legacy_qk_hook_names
        if legacy:
            names, renamed = legacy_qk_names(self, names, mapping=True)
        with self._recording(names) as acts:
            logits = self.forward(tokens, cache=cache, lengths=lengths, last_only=last_only,
                                  images=images)
        acts.model = self
        if legacy:
            for new, old in renamed.items():
                if new in acts:
                    acts[old] = acts.pop(new)
        return logits, acts

    def __repr__(self) -> str:
        c = self.config
        return (f"<gemmacpp.Model {c['family']} {c['num_layers']} layers, d={c['hidden_size']}, "
                f"vocab={c['vocab_size']}: {self.path!r}>")
