"""A text model's embedding and attention weights as float32 NumPy arrays in TransformerLens'
shapes (model.W_E, W_U, W_Q, W_K, W_V, W_O; gemmacpp.lens). Read from the checkpoint file by the
stored names of Hugging Face checkpoints (model.layers.{i}.self_attn.q_proj.weight, ...) and GGUF
files (blk.{i}.attn_q.weight, ...); plain tables are copied to float32, quantized ones
dequantized."""
from __future__ import annotations

import re

import numpy as np

from . import ops, weights
from .quant import QuantizedTensor

_GGUF = {"embed": "token_embd.weight", "q": "blk.{i}.attn_q.weight", "k": "blk.{i}.attn_k.weight",
         "v": "blk.{i}.attn_v.weight", "o": "blk.{i}.attn_output.weight"}
# HF: the text model's names end so (the vision tower's have "vision" in their path).
_HF = {"embed": r"(^|\.)embed_tokens\.weight$", "q": r"(^|\.)layers\.{i}\.self_attn\.q_proj\.weight$",
       "k": r"(^|\.)layers\.{i}\.self_attn\.k_proj\.weight$",
       "v": r"(^|\.)layers\.{i}\.self_attn\.v_proj\.weight$",
       "o": r"(^|\.)layers\.{i}\.self_attn\.o_proj\.weight$"}


class LensWeights:
    def __init__(self, model):
        self.model = model
        self.file = weights.open(model.path)
        self.names = [n for n in self.file.names() if "vision" not in n and "per_layer" not in n]

    def _find(self, what: str, layer: int | None = None) -> str:
        if self.file.format == "gguf":
            name = _GGUF[what].format(i=layer)
            if name in self.file:
                return name
        else:
            pattern = re.compile(_HF[what].replace("{i}", str(layer)))
            hits = [n for n in self.names if pattern.search(n)]
            if len(hits) == 1:
                return hits[0]
        where = f" of layer {layer}" if layer is not None else ""
        raise NotImplementedError(f"the {what} weight{where} of {self.model.path!r} has no stored "
                                  "name gemmacpp.lens knows (Gemma 1/2/3/4 HF and GGUF attention "
                                  "layers; a layer without attention has none)")

    def _float32(self, name: str) -> np.ndarray:
        w = self.file[name]
        if isinstance(w, QuantizedTensor):
            return np.asarray(ops.dequantize(w), dtype=np.float32).reshape(w.shape)
        return np.array(w, dtype=np.float32)

    def embedding(self) -> np.ndarray:
        """[vocab, d] float32 (a new copy each time: 671 MB for Gemma 3's 262k x 640)."""
        return self._float32(self._find("embed"))

    def embedding_rows(self, ids) -> np.ndarray:
        """The embedding rows of token ids (any integer array shape) -> [*ids.shape, d] float32,
        reading (and dequantizing) only those rows."""
        ids = np.asarray(ids)
        flat = ids.reshape(-1).astype(np.int64)
        w = self.file[self._find("embed")]
        vocab = w.shape[0]
        if flat.size and (flat.min() < 0 or flat.max() >= vocab):
            raise ValueError(f"token ids must be in [0, {vocab})")
        if isinstance(w, QuantizedTensor):
            rows = QuantizedTensor(data=np.ascontiguousarray(w.data[flat]), qtype=w.qtype,
                                   shape=(len(flat), w.shape[1]))
            out = np.asarray(ops.dequantize(rows), dtype=np.float32).reshape(len(flat), -1)
        else:
            out = np.asarray(w[flat], dtype=np.float32)
        return out.reshape(*ids.shape, -1)

    def stack(self, what: str) -> np.ndarray:
        c = self.model.config
        d, H = int(c["hidden_size"]), int(c["num_heads"])
        per_layer = []
        for i, layer in enumerate(c["layers"]):
            D = int(layer.get("head_dim") or c["head_dim"])
            K = int(layer.get("num_kv_heads") or c["num_kv_heads"])
            if what in ("k", "v") and layer.get("kv_source") is not None:
                raise NotImplementedError(f"layer {i} reuses the keys and values of layer "
                                          f"{layer['kv_source']} (KV sharing): it has no W_{what.upper()}")
            if what == "v" and layer.get("k_eq_v"):
                what_here = "k"  # keys double as values
            else:
                what_here = what
            w = self._float32(self._find(what_here, i))  # [out, in]
            if what == "q":
                per_layer.append(w.reshape(H, D, d).transpose(0, 2, 1))
            elif what in ("k", "v"):
                kv = w.reshape(K, D, d).transpose(0, 2, 1)
                per_layer.append(np.repeat(kv, H // K, axis=0))
            else:  # o: [d, H*D] -> [H, D, d]
                per_layer.append(w.reshape(d, H, D).transpose(1, 2, 0))
        shapes = {a.shape for a in per_layer}
        if len(shapes) > 1:
            raise NotImplementedError(f"W_{what.upper()}: the layers' shapes differ ({sorted(shapes)}; "
                                      "Gemma 4's global layers have a larger head_dim), so they do "
                                      "not stack")
        return np.ascontiguousarray(np.stack(per_layer))
