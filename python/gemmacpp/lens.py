"""TransformerLens conventions on gemmacpp models, so that code written for TransformerLens ports
with few changes (docs/hooks.md):

    logits = model.run_with_hooks(tokens, fwd_hooks=[("blocks.3.attn.hook_z", fn)])
    logits, cache = model.run_with_cache(tokens, names_filter=lambda n: "resid" in n)
    cache["resid_post", 3]; cache.accumulated_resid(); cache.decompose_resid(); cache.logit_attrs(...)
    model.cfg.n_layers, model.W_E, model.W_Q, model.to_str_tokens("Hello world")

Hook functions are called as fn(activation, hook) with hook a HookPoint: a str (the hook's name,
so fn(activation, name) code keeps working) with .name and .layer() as TransformerLens' hook
objects have. Activations are NumPy arrays in and out (TransformerLens: torch tensors).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

__all__ = ["HookPoint", "LensConfig", "act_name"]


class HookPoint(str):
    """The name of a hook point as a hook function receives it: a str, with TransformerLens'
    hook.name and hook.layer()."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return str(self)

    def layer(self) -> int:
        """The block index of a blocks.{i}. point (ValueError for points outside the blocks)."""
        m = re.match(r"(?:vision\.)?blocks\.(\d+)\.", self)
        if m is None:
            raise ValueError(f"{str(self)!r} is not in a block")
        return int(m.group(1))


_POINTS: dict[str, HookPoint] = {}


def hook_point(name: str) -> HookPoint:
    """The (shared) HookPoint of a name."""
    p = _POINTS.get(name)
    if p is None:
        p = _POINTS.setdefault(name, HookPoint(name))
    return p


# TransformerLens' get_act_name: shorthand -> full name.
_ACT_ALIASES = {"attn": "pattern", "attn_logits": "attn_scores", "key": "k", "query": "q",
                "value": "v", "mlp_pre": "pre", "mlp_mid": "mid", "mlp_post": "post"}
_ATTN_POINTS = {"k", "v", "q", "z", "rot_k", "rot_q", "result", "pattern", "attn_scores",
                "q_normed", "k_normed"}
_MLP_POINTS = {"pre", "post", "mid", "pre_linear"}
_LAYER_TYPES = {"a": "attn", "m": "mlp", "b": "", "block": "", "blocks": "", "attention": "attn"}
# Where gemmacpp's name differs from TransformerLens'.
_GEMMACPP_NAMES = {"attn.hook_attn_scores": "attn.hook_scores"}


def act_name(name: str, layer: int | None = None, layer_type: str | None = None) -> str:
    """A hook name from TransformerLens' shorthand, as transformer_lens.utils.get_act_name
    builds it: ("resid_post", 3) -> "blocks.3.hook_resid_post", ("q", 0) ->
    "blocks.0.attn.hook_q", ("scale", 2, "ln1") -> "blocks.2.ln1.hook_scale", "resid_post3",
    ("normalized",) -> "ln_final.hook_normalized"; full names pass through. Attention scores
    are gemmacpp's attn.hook_scores."""
    if "." in name and layer is None:
        return name
    m = re.fullmatch(r"([a-z_]+?)(\d+)([a-z]?.*)", name)
    if m is not None and layer is None:
        name, layer, layer_type = m.group(1), int(m.group(2)), m.group(3) or None
    name = _ACT_ALIASES.get(name, name)
    full = f"blocks.{int(layer)}." if layer is not None else ""
    if name in _ATTN_POINTS:
        layer_type = "attn"
    elif name in _MLP_POINTS:
        layer_type = "mlp"
    elif layer_type in _LAYER_TYPES:
        layer_type = _LAYER_TYPES[layer_type]
    if layer_type:
        full += f"{layer_type}."
    full += f"hook_{name}"
    if name in ("scale", "normalized") and layer is None:
        full = "ln_final." + full
    for tl, ours in _GEMMACPP_NAMES.items():
        if full.endswith(tl):
            full = full[: -len(tl)] + ours
    return full


class CacheAnalysis:
    """TransformerLens' ActivationCache methods, on a dict of cached NumPy activations (mixed into
    gemmacpp.hooks.ActivationCache). `model` is the model that filled the cache (run_with_cache
    sets it): the methods read its config and unembedding."""

    model = None

    def __getitem__(self, key):
        if isinstance(key, tuple):
            key = act_name(*key)
        elif isinstance(key, str) and not dict.__contains__(self, key) and "." not in key:
            key = act_name(key)
        try:
            return dict.__getitem__(self, key)
        except KeyError:
            raise KeyError(f"{key!r} is not in this cache ({len(self)} activations; run_with_cache "
                           "names= / names_filter= choose which are recorded)") from None

    def __repr__(self) -> str:
        names = list(self)
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        size = sum(a.nbytes for a in self.values()) / 2**20
        return f"ActivationCache({len(names)} activations, {size:.1f} MiB: {shown})"

    __str__ = __repr__

    def __reduce__(self):  # pickles as the arrays alone (the model stays behind)
        return (type(self), (dict(self),))

    def _repr_pretty_(self, p, cycle):  # IPython/Jupyter: the same short form
        p.text(repr(self))

    # ---- stacks over layers ----

    def _n_layers(self) -> int:
        if self.model is not None:
            return int(self.model.config["num_layers"])
        layers = [int(m.group(1)) for n in self if (m := re.match(r"blocks\.(\d+)\.", n))]
        if not layers:
            raise ValueError("this cache holds no blocks.{i} activations")
        return max(layers) + 1

    def stack_activation(self, activation_name: str, layer: int = -1,
                         sublayer_type: str | None = None) -> np.ndarray:
        """The activation `activation_name` (shorthand, e.g. "resid_post" or "pattern") of
        every layer below `layer` (-1: all), stacked along a new first axis."""
        n = self._n_layers() if layer == -1 else int(layer)
        return np.stack([self[act_name(activation_name, i, sublayer_type)] for i in range(n)])

    def _final_resid(self) -> np.ndarray:
        return self[f"blocks.{self._n_layers() - 1}.hook_resid_post"]

    def accumulated_resid(self, layer: int | None = None, incl_mid: bool = False,
                          apply_ln: bool = False, pos_slice=None, mlp_input: bool = False,
                          return_labels: bool = False):
        """The residual stream at each layer up to and including `layer` (None or -1: all, and
        the final residual), [components, B, T, d], as TransformerLens stacks it: resid_pre of
        layers 0..layer (with resid_mid between them when incl_mid, and layer's own resid_mid
        with mlp_input), the final resid_post in place of layer n_layers' resid_pre. apply_ln:
        through the norm that reads the residual at `layer` (apply_ln_to_stack). With
        return_labels, also the component labels ("0_pre", "0_mid", ..., "final_post")."""
        n = self._n_layers()
        layer = n if layer is None or layer == -1 else int(layer)
        parts, labels = [], []
        for i in range(layer + 1):
            if i == n:
                parts.append(self._final_resid())
                labels.append("final_post")
                continue
            parts.append(self[f"blocks.{i}.hook_resid_pre"])
            labels.append(f"{i}_pre")
            if (incl_mid and i < layer) or (mlp_input and i == layer):
                parts.append(self[f"blocks.{i}.hook_resid_mid"])
                labels.append(f"{i}_mid")
        out = np.stack(parts)
        out = _slice_pos(out, pos_slice)
        if apply_ln:
            out = self.apply_ln_to_stack(out, layer, mlp_input, pos_slice=pos_slice)
        return (out, labels) if return_labels else out

    def decompose_resid(self, layer: int | None = None, mlp_input: bool = False,
                        mode: str = "all", apply_ln: bool = False, pos_slice=None,
                        incl_embeds: bool = True, return_labels: bool = False):
        """The residual stream before `layer` (None: the final one) split into what wrote it,
        [components, B, T, d]: the embedding, then each layer's attn_out and mlp_out ("all"; or
        only "attn" / "mlp" outputs); with mlp_input, layer's own attn_out too. The components
        sum to the residual (resid_pre, resid_mid, or the final resid_post) for families whose
        residual stream is that sum (Gemma 1/2/3; not Gemma 4's per-layer inputs and scalars,
        not RecurrentGemma's recurrent blocks, whose output is not hook_attn_out)."""
        if mode not in ("all", "attn", "mlp"):
            raise ValueError(f"mode {mode!r}: expected 'all', 'attn' or 'mlp'")
        n = self._n_layers()
        layer = n if layer is None or layer == -1 else int(layer)
        parts, labels = [], []
        if incl_embeds:
            # TransformerLens' hook_embed is the scaled embedding (the scale folded into W_E);
            # gemmacpp's resid_pre of block 0 is that same sum.
            parts.append(self["blocks.0.hook_resid_pre"])
            labels.append("embed")
        for i in range(layer + (1 if mlp_input and layer < n else 0)):
            if mode in ("all", "attn"):
                parts.append(self[f"blocks.{i}.hook_attn_out"])
                labels.append(f"{i}_attn_out")
            if i == layer:  # mlp_input: the attention output of the layer itself only
                break
            if mode in ("all", "mlp"):
                parts.append(self[f"blocks.{i}.hook_mlp_out"])
                labels.append(f"{i}_mlp_out")
        out = _slice_pos(np.stack(parts), pos_slice)
        if apply_ln:
            out = self.apply_ln_to_stack(out, layer, mlp_input, pos_slice=pos_slice)
        return (out, labels) if return_labels else out

    # ---- the norm and the unembedding, linear given the cached scale ----

    def _norm_point(self, layer: int | None, mlp_input: bool):
        """(the residual a norm reads, its cached output) for layer (None/n_layers: the final
        norm)."""
        n = self._n_layers()
        if layer is None or layer in (-1, n):
            return self._final_resid(), self["ln_final.hook_normalized"]
        if mlp_input:
            return self[f"blocks.{layer}.hook_resid_mid"], self[f"blocks.{layer}.ln2.hook_normalized"]
        return self[f"blocks.{layer}.hook_resid_pre"], self[f"blocks.{layer}.ln1.hook_normalized"]

    def apply_ln_to_stack(self, residual_stack, layer: int | None = None, mlp_input: bool = False,
                          pos_slice=None, batch_slice=None, has_batch_dim: bool = True) -> np.ndarray:
        """residual_stack [..., B, T, d] through the RMSNorm that reads the residual at `layer`
        (None: the final norm; mlp_input: the layer's second norm), linearly: each component is
        divided by the cached residual's RMS scale and multiplied by the norm's weight, so the
        components of a full decomposition sum to the norm's cached output. TransformerLens
        divides by the scale only (its weights are folded into the next matrices); here the
        weight is applied, so that logit_attrs can use the plain W_U. The weight is recovered
        from the cached input and output of the norm (least squares over positions, exact to
        float32 rounding), whatever the checkpoint's storage convention."""
        x, y = self._norm_point(layer, mlp_input)
        eps = float(self.model.config["norm_eps"]) if self.model is not None else 1e-6
        x = x.astype(np.float64)
        scale = np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)  # [B, T, 1]
        xhat = x / scale
        den = np.sum(xhat * xhat, axis=tuple(range(xhat.ndim - 1)))
        weight = np.sum(xhat * y, axis=tuple(range(xhat.ndim - 1))) / np.where(den > 0, den, 1)
        stack = np.asarray(residual_stack, dtype=np.float64)
        if batch_slice is not None:
            scale = scale[batch_slice]
            if has_batch_dim:
                stack = stack[:, batch_slice]
        if not has_batch_dim:
            scale = scale[0]
        scale = _slice_pos(scale, pos_slice, axis=-2)
        return (stack / scale * weight).astype(np.float32)

    def logit_attrs(self, residual_stack, tokens, incorrect_tokens=None, pos_slice=None,
                    batch_slice=None, has_batch_dim: bool = True) -> np.ndarray:
        """Each component's direct contribution to the logit of `tokens` (an id, or ids shaped
        like the stack's leading batch/position axes), minus that of incorrect_tokens when
        given: apply_ln_to_stack(residual_stack) projected on the unembedding columns. Components
        of a full decomposition sum to the logits (before any final softcap)."""
        if self.model is None:
            raise ValueError("logit_attrs needs the model's unembedding: use a cache from "
                             "model.run_with_cache")
        normed = self.apply_ln_to_stack(residual_stack, None, pos_slice=pos_slice,
                                        batch_slice=batch_slice, has_batch_dim=has_batch_dim)
        direction = _unembed_columns(self.model, tokens)
        if incorrect_tokens is not None:
            direction = direction - _unembed_columns(self.model, incorrect_tokens)
        # direction [..., d] broadcasts against the stack's trailing [..., d].
        return np.sum(normed.astype(np.float64) * direction, axis=-1).astype(np.float32)


def _unembed_columns(model, tokens) -> np.ndarray:
    """W_U[:, tokens] moved to the last axis, [..., d] float64, reading only those rows of the
    (tied) embedding."""
    t = np.asarray(tokens)
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"tokens: expected integer ids, got {t.dtype}")
    return model._lens_weights().embedding_rows(t).astype(np.float64)


def _slice_pos(a, pos_slice, axis=-2):
    if pos_slice is None:
        return a
    if isinstance(pos_slice, int):
        pos_slice = [pos_slice]
    index = [slice(None)] * a.ndim
    index[axis] = pos_slice
    return a[tuple(index)]


@dataclass
class LensConfig:
    """A model's configuration under TransformerLens' HookedTransformerConfig field names (the
    ones that apply); model.config has gemmacpp's own, in full."""

    n_layers: int
    d_model: int
    n_heads: int
    d_head: int
    d_mlp: int
    d_vocab: int
    n_key_value_heads: int | None
    n_ctx: int
    eps: float
    model_name: str
    original_architecture: str
    act_fn: str = "gelu_pytorch_tanh"
    normalization_type: str = "RMS"
    positional_embedding_type: str = "rotary"
    rotary_dim: int | None = None
    rotary_base: float | None = None
    use_qk_norm: bool = False
    attn_scores_soft_cap: float = -1.0
    output_logits_soft_cap: float = -1.0
    attn_scale: float | None = None
    use_attn_scale: bool = True
    window_size: int | None = None
    attn_types: list = field(default_factory=list)
    d_vocab_out: int | None = None
    device: str = "cpu"
    dtype: str = "float32"
    default_prepend_bos: bool = True


def lens_config(model) -> LensConfig:
    c = model.config
    layers = c.get("layers") or []
    windows = [l.get("window") for l in layers if l.get("type") == "local" and l.get("window")]
    scalar = c.get("query_pre_attn_scalar") or c.get("head_dim")
    return LensConfig(
        n_layers=int(c["num_layers"]), d_model=int(c["hidden_size"]), n_heads=int(c["num_heads"]),
        d_head=int(c["head_dim"]), d_mlp=int(c["intermediate_size"]), d_vocab=int(c["vocab_size"]),
        d_vocab_out=int(c["vocab_size"]),
        n_key_value_heads=c.get("num_kv_heads"), n_ctx=int(c.get("max_position_embeddings") or 8192),
        eps=float(c["norm_eps"]), model_name=model.path, original_architecture=c["family"],
        rotary_dim=c.get("rotary_dim"), rotary_base=layers[0].get("rope_base") if layers else None,
        use_qk_norm=bool(c.get("qk_norm")),
        attn_scores_soft_cap=float(c["attn_softcap"]) if c.get("attn_softcap") else -1.0,
        output_logits_soft_cap=float(c["final_softcap"]) if c.get("final_softcap") else -1.0,
        attn_scale=float(np.sqrt(scalar)) if scalar else None,
        window_size=windows[0] if windows else None,
        attn_types=["local" if l.get("type") == "local" else "global" for l in layers])


class LensMixin:
    """TransformerLens' model attributes and helpers for the text Model: cfg, W_E, W_U, W_Q,
    W_K, W_V, W_O, to_tokens, to_string, to_str_tokens, run_with_hooks."""

    @property
    def cfg(self) -> LensConfig:
        """The config under TransformerLens' field names (model.config: gemmacpp's)."""
        return lens_config(self)

    def run_with_hooks(self, tokens, *, fwd_hooks=(), bwd_hooks=(), reset_hooks_end: bool = True,
                       **forward_kwargs) -> np.ndarray:
        """forward(tokens, **forward_kwargs) with fwd_hooks ([(name | glob | predicate, fn)]) on
        for this call. fn(activation, hook) gets a NumPy view it may edit in place, or returns a
        replacement (see hooks()). There are no backward hooks (bwd_hooks must be empty)."""
        if bwd_hooks:
            raise NotImplementedError("run_with_hooks: gemmacpp has no backward pass (bwd_hooks)")
        if not reset_hooks_end:
            raise NotImplementedError("run_with_hooks: hooks last for the call only "
                                      "(use model.hooks(...) as a context manager to keep them)")
        with self.hooks(list(fwd_hooks)):
            return self.forward(tokens, **forward_kwargs)

    # ---- tokens ----

    def to_tokens(self, input, prepend_bos: bool = True, padding_side: str = "right",
                  truncate: bool = True) -> np.ndarray:
        """Token ids int64 [B, T] of a string or a list of strings (rows right-padded with the pad
        id; forward(..., lengths=...) takes the real lengths), BOS first unless prepend_bos is
        False. truncate: keep at most cfg.n_ctx tokens."""
        texts = [input] if isinstance(input, str) else list(input)
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("to_tokens: expected a str or a list of str")
        tok = self.tokenizer
        rows = [tok.encode(t, add_bos=bool(prepend_bos)) for t in texts]
        if truncate:
            n_ctx = self.cfg.n_ctx
            rows = [r[:n_ctx] for r in rows]
        width = max((len(r) for r in rows), default=0)
        out = np.full((len(rows), width), tok.pad_id, dtype=np.int64)
        for i, r in enumerate(rows):
            if padding_side == "right":
                out[i, :len(r)] = r
            elif padding_side == "left":
                out[i, width - len(r):] = r
            else:
                raise ValueError(f"padding_side {padding_side!r}: expected 'right' or 'left'")
        return out

    def to_string(self, tokens):
        """The text of token ids: a str for one sequence (an int or [T]), a list for [B, T]."""
        a = np.asarray(tokens)
        if a.ndim == 0:
            a = a[None]
        if a.ndim == 1:
            return self.tokenizer.decode([int(t) for t in a])
        if a.ndim == 2:
            return [self.tokenizer.decode([int(t) for t in row]) for row in a]
        raise ValueError(f"to_string: expected token ids [T] or [B, T], got shape {a.shape}")

    def to_single_token(self, text: str) -> int:
        """The id of a text that is exactly one token (without BOS); ValueError otherwise."""
        ids = self.tokenizer.encode(text, add_bos=False)
        if len(ids) != 1:
            raise ValueError(f"{text!r} is {len(ids)} tokens, not one: {ids}")
        return ids[0]

    def to_str_tokens(self, input, prepend_bos: bool = True) -> list[str]:
        """Each token of a string (tokenized, BOS first unless prepend_bos is False) or of token
        ids [T] as its own text."""
        if isinstance(input, str):
            ids = self.tokenizer.encode(input, add_bos=bool(prepend_bos))
        else:
            a = np.asarray(input)
            if a.ndim == 2 and a.shape[0] == 1:
                a = a[0]
            if a.ndim != 1:
                raise ValueError(f"to_str_tokens: expected one sequence, got shape {a.shape}")
            ids = [int(t) for t in a]
        return [self.tokenizer.decode([t]) for t in ids]

    # ---- weights, shaped as TransformerLens shapes them ----

    @property
    def W_E(self) -> np.ndarray:
        """The embedding [d_vocab, d_model] float32 with the embedding scale (sqrt(d_model) for
        Gemma) folded in, as TransformerLens folds it: hook_embed = W_E[tokens]. A new copy on
        each access (dequantized from quantized tables)."""
        return self._lens_weights().embedding() * np.float32(self.config.get("embed_scale") or 1.0)

    @property
    def W_U(self) -> np.ndarray:
        """The unembedding [d_model, d_vocab] float32: the (tied) embedding's transpose,
        unscaled. Logits = ln_final output @ W_U (then the final softcap where there is one)."""
        return self._lens_weights().embedding().T

    @property
    def W_Q(self) -> np.ndarray:
        """[n_layers, n_heads, d_model, d_head] float32: q = x @ W_Q[l, h] (a copy)."""
        return self._lens_weights().stack("q")

    @property
    def W_K(self) -> np.ndarray:
        """[n_layers, n_heads, d_model, d_head] float32, each key head repeated for the query
        heads that share it (grouped-query attention), as TransformerLens' W_K (a copy)."""
        return self._lens_weights().stack("k")

    @property
    def W_V(self) -> np.ndarray:
        """[n_layers, n_heads, d_model, d_head] float32, repeated as W_K (a copy)."""
        return self._lens_weights().stack("v")

    @property
    def W_O(self) -> np.ndarray:
        """[n_layers, n_heads, d_head, d_model] float32: attn output = sum_h z[h] @ W_O[l, h]."""
        return self._lens_weights().stack("o")

    def _lens_weights(self):
        w = getattr(self, "_lens_weight_reader", None)
        if w is None:
            from .lens_weights import LensWeights
            w = self._lens_weight_reader = LensWeights(self)
        return w


# ---- the deprecated meaning of attn.hook_q / hook_k (before 0.2: after the QK-norm) ----

_LEGACY_QK = re.compile(r"^(.*blocks\.\d+\.attn\.hook_[qk])$")


def legacy_qk_names(model, spec, mapping: bool = False):
    """With model.legacy_qk_hook_names (deprecated, kept for one release), hook selections with
    the exact names blocks.{i}.attn.hook_q / hook_k become hook_q_normed / hook_k_normed where
    the model has those (a DeprecationWarning says so); otherwise spec as it is. spec: a hooks()
    mapping or pair list, or a run_with_cache names selection. mapping=True: also returns
    {new name: old name} for renaming a cache back."""
    renamed: dict[str, str] = {}
    if not getattr(model, "legacy_qk_hook_names", False) or spec is None or callable(spec):
        return (spec, renamed) if mapping else spec
    known = set(model.hook_names())

    def one(name):
        if isinstance(name, str) and _LEGACY_QK.match(name) and name + "_normed" in known:
            renamed[name + "_normed"] = name
            return name + "_normed"
        return name

    def names_of(s):
        return [one(n) for n in s] if isinstance(s, (list, tuple)) else one(s)

    if isinstance(spec, dict):
        out = {names_of(k) if isinstance(k, str) else k: v for k, v in spec.items()}
    elif isinstance(spec, (list, tuple)) and spec and all(
            isinstance(p, tuple) and len(p) == 2 and callable(p[1]) for p in spec):
        out = [(names_of(k), fn) for k, fn in spec]
    else:
        out = names_of(spec)
    if renamed:
        import warnings
        warnings.warn("legacy_qk_hook_names is deprecated and goes in the next release: "
                      "blocks.{i}.attn.hook_q / hook_k are now the projections before the QK-norm "
                      "(as in TransformerLens); use hook_q_normed / hook_k_normed for the normed ones",
                      DeprecationWarning, stacklevel=3)
    return (out, renamed) if mapping else out
