"""SAE: a sparse autoencoder or transcoder's weights, the hook points it reads and writes, and
its maths on the gemmacpp kernels (gemmacpp.ops.sae_encode / sae_decode).

    pre   = (x - b_dec if apply_b_dec_to_input) @ W_enc + b_enc      W_enc [d_in, d_sae]
    acts  = relu(pre) | relu(pre) * (pre > threshold) | relu(topk(pre, k))
    recons = acts @ W_dec + b_dec                                      W_dec [d_sae, d_out]
    output = recons (+ skip(x) for skip transcoders)

The big matrices stay as the file stores them (memory-mapped, float32/bfloat16/float16); the
vectors (b_enc, b_dec, threshold) are float32 copies.
"""
from __future__ import annotations

import copy

import numpy as np

from .. import ops

ARCHITECTURES = ("jumprelu", "relu", "topk")
KINDS = ("sae", "transcoder", "skip_transcoder")
_ACTIVATION = {"jumprelu": "jumprelu", "relu": "relu", "topk": "topk"}


def _vector(a, n, what, name):
    if a is None:
        return None
    v = np.asarray(a)
    if v.shape != (n,):
        raise ValueError(f"{name}: {what} has shape {v.shape}, expected ({n},)")
    return np.ascontiguousarray(v, dtype=np.float32)


def _matrix(a, what, name):
    if a is None:
        raise ValueError(f"{name}: {what} is missing")
    if not hasattr(a, "shape") or len(a.shape) != 2:
        raise ValueError(f"{name}: {what} must be a 2-D matrix, got shape "
                         f"{getattr(a, 'shape', None)}")
    if str(a.dtype).removeprefix("torch.") not in ("float32", "bfloat16", "float16"):
        raise TypeError(f"{name}: {what} must be float32, bfloat16 or float16, got {a.dtype}")
    return a


class SAE:
    """A sparse autoencoder (kind "sae"), transcoder ("transcoder") or skip transcoder
    ("skip_transcoder"), with architecture "jumprelu" (threshold [d_sae]), "relu" or "topk" (k).

    hook_in: the gemmacpp hook point it reads (None: not known, give it when attaching);
    hook_out: the one it writes (transcoders; an SAE writes where it reads). input_norm "rms": the
    input is x / rms(x) of hook_in's activation, without a norm gain (Gemma Scope 1 transcoders
    read the pre-MLP norm's output without its (1 + w), so they read hook_resid_mid, normalised).
    W_skip: [d_out, d_in] (SAELens' layout, output = ... + x @ W_skip.T) or, with
    skip_layout="in_out", [d_in, d_out] (Gemma Scope 2's affine_skip_connection, + x @ W_skip).
    """

    def __init__(self, W_enc, W_dec, b_enc=None, b_dec=None, *, threshold=None, k=None,
                 architecture: str = "jumprelu", kind: str | None = None, W_skip=None,
                 skip_layout: str = "out_in", hook_in: str | None = None,
                 hook_out: str | None = None, input_norm: str | None = None,
                 apply_b_dec_to_input: bool = False, name: str | None = None,
                 metadata: dict | None = None, mapped: bool = True):
        self.name = name or "SAE"
        if architecture not in ARCHITECTURES:
            raise NotImplementedError(f"{self.name}: architecture {architecture!r} is not supported "
                                      f"(supported: {', '.join(ARCHITECTURES)})")
        self.architecture = architecture
        self.W_enc = _matrix(W_enc, "W_enc", self.name)
        self.W_dec = _matrix(W_dec, "W_dec", self.name)
        d_in, d_sae = (int(s) for s in self.W_enc.shape)
        if int(self.W_dec.shape[0]) != d_sae:
            raise ValueError(f"{self.name}: W_enc is {tuple(self.W_enc.shape)} ([d_in, d_sae]) but "
                             f"W_dec is {tuple(self.W_dec.shape)} ([d_sae, d_out]): d_sae differs")
        d_out = int(self.W_dec.shape[1])
        self.b_enc = _vector(b_enc, d_sae, "b_enc", self.name)
        self.b_dec = _vector(b_dec, d_out, "b_dec", self.name)
        if architecture == "jumprelu":
            if threshold is None:
                raise ValueError(f"{self.name}: a JumpReLU SAE needs a threshold [d_sae], and none "
                                 "was given (missing from the file?)")
            self.threshold = _vector(threshold, d_sae, "threshold", self.name)
        elif threshold is not None:
            raise ValueError(f"{self.name}: threshold given for a {architecture!r} SAE")
        else:
            self.threshold = None
        if architecture == "topk":
            if k is None or not 1 <= int(k) <= d_sae:
                raise ValueError(f"{self.name}: a TopK SAE needs 1 <= k <= d_sae = {d_sae}, got {k}")
            self.k = int(k)
        else:
            self.k = None
        if apply_b_dec_to_input and d_in != d_out:
            raise ValueError(f"{self.name}: apply_b_dec_to_input needs d_in == d_out, got "
                             f"{d_in} and {d_out}")
        self.apply_b_dec_to_input = bool(apply_b_dec_to_input)
        if skip_layout not in ("out_in", "in_out"):
            raise ValueError(f"{self.name}: skip_layout must be 'out_in' or 'in_out'")
        self.skip_layout = skip_layout
        self.W_skip = None
        if W_skip is not None:
            self.W_skip = _matrix(W_skip, "W_skip", self.name)
            want = (d_out, d_in) if skip_layout == "out_in" else (d_in, d_out)
            if tuple(int(s) for s in self.W_skip.shape) != want:
                raise ValueError(f"{self.name}: W_skip is {tuple(self.W_skip.shape)}, expected "
                                 f"{want} ({'[d_out, d_in]' if skip_layout == 'out_in' else '[d_in, d_out]'})")
        if kind is None:
            kind = ("skip_transcoder" if W_skip is not None else
                    "transcoder" if (hook_out not in (None, hook_in) or d_in != d_out) else "sae")
        if kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {KINDS}, got {kind!r}")
        if (kind == "skip_transcoder") != (W_skip is not None):
            raise ValueError(f"{self.name}: a skip transcoder needs W_skip, and only it has one")
        if kind == "sae" and d_in != d_out:
            raise ValueError(f"{self.name}: an SAE reconstructs its input, but d_in = {d_in} and "
                             f"d_out = {d_out}")
        self.kind = kind
        if input_norm not in (None, "rms"):
            raise ValueError(f"{self.name}: input_norm must be None or 'rms', got {input_norm!r}")
        self.input_norm = input_norm
        self.hook_in = hook_in
        self.hook_out = hook_out if hook_out is not None else (hook_in if kind == "sae" else None)
        self.metadata = dict(metadata or {})
        self.mapped = mapped  # whether W_enc / W_dec are memory-mapped from the file

    # ---- sizes and names ----
    @property
    def d_in(self) -> int:
        return int(self.W_enc.shape[0])

    @property
    def d_sae(self) -> int:
        return int(self.W_enc.shape[1])

    @property
    def d_out(self) -> int:
        return int(self.W_dec.shape[1])

    @property
    def is_transcoder(self) -> bool:
        return self.kind != "sae"

    def at(self, hook_in: str, hook_out: str | None = None, *, input_norm="keep") -> "SAE":
        """A copy (sharing the weights) that reads hook_in and writes hook_out (default: a
        transcoder's own hook_out, an SAE's hook_in). An SAE given another hook_out becomes a
        transcoder between the two. input_norm: None or "rms" (default: keep the SAE's)."""
        other = copy.copy(self)
        other.metadata = dict(self.metadata)
        if hook_out is None:
            hook_out = hook_in if self.kind == "sae" else self.hook_out
        if hook_out is None:
            raise ValueError(f"{self.name}: a transcoder needs hook_out too")
        other.hook_in, other.hook_out = hook_in, hook_out
        if self.kind == "sae" and hook_out != hook_in:
            other.kind = "transcoder"
        if input_norm != "keep":
            if input_norm not in (None, "rms"):
                raise ValueError(f"{self.name}: input_norm must be None or 'rms', got {input_norm!r}")
            other.input_norm = input_norm
        return other

    # ---- the maths ----
    def encode(self, x, *, dense: bool = False, return_pre: bool = False):
        """Feature activations of x [..., d_in] float32: SparseActs (dense=True: [..., d_sae]);
        with return_pre, (acts, pre-activations [..., d_sae]). x is the SAE's input as it reads it
        (already normalised for input_norm="rms")."""
        return ops.sae_encode(self._input(x), self.W_enc, self.b_enc, threshold=self.threshold,
                              k=self.k, activation=_ACTIVATION[self.architecture],
                              b_dec=self.b_dec if self.apply_b_dec_to_input else None,
                              dense=dense, return_pre=return_pre)

    def decode(self, acts) -> np.ndarray:
        """acts @ W_dec + b_dec: [..., d_out] float32, from SparseActs or dense [..., d_sae]
        (without a skip transcoder's x @ W_skip, which needs x: see forward)."""
        return ops.sae_decode(acts, self.W_dec, self.b_dec)

    def skip(self, x) -> np.ndarray:
        """A skip transcoder's affine skip term of x [..., d_in]: [..., d_out] float32."""
        if self.W_skip is None:
            raise ValueError(f"{self.name} is a {self.kind}, which has no skip connection")
        x = self._input(x)
        if self.skip_layout == "out_in":
            return ops.linear(x, self.W_skip)
        return ops.sae_encode(x, self.W_skip, activation="identity", dense=True)

    def forward(self, x) -> np.ndarray:
        """The reconstruction (SAE) or prediction (transcoder) of x: decode(encode(x)) (+ skip)."""
        out = self.decode(self.encode(x))
        return out + self.skip(x) if self.W_skip is not None else out

    __call__ = forward

    def activate(self, pre) -> np.ndarray:
        """The activation function on given pre-activations [..., d_sae] (NumPy float32), as
        encode applies it: used when a hook edits hook_sae_acts_pre."""
        p = np.asarray(pre, dtype=np.float32)
        if self.architecture == "relu":
            return np.where(p > 0, p, np.float32(0))
        if self.architecture == "jumprelu":
            return np.where((p > self.threshold) & (p > 0), p, np.float32(0))
        rows = p.reshape(-1, p.shape[-1])
        out = np.zeros_like(rows)
        top = np.argsort(-rows, axis=1, kind="stable")[:, :self.k]  # ties to the lower index
        vals = np.take_along_axis(rows, top, 1)
        np.put_along_axis(out, top, np.where(vals > 0, vals, np.float32(0)), 1)
        return out.reshape(p.shape)

    def feature_direction(self, feature: int) -> np.ndarray:
        """Row `feature` of W_dec as float32 [d_out]: what the feature adds per unit of activation."""
        if not 0 <= int(feature) < self.d_sae:
            raise IndexError(f"{self.name}: feature {feature} is not in [0, {self.d_sae})")
        return np.asarray(self.W_dec[int(feature)], dtype=np.float32)

    def input_from(self, activation, eps: float = 1e-6) -> np.ndarray:
        """The SAE's input, as its own float32 array [B, T, d_in], from the activation of its
        hook_in point [B, T, ...] (attention heads flattened; divided by its RMS, with eps = the
        model's norm eps, for input_norm="rms")."""
        a = np.asarray(activation)
        x = a.reshape(a.shape[0], a.shape[1], -1) if a.ndim > 2 else a
        if self.input_norm == "rms":
            return ops.rms_norm(np.ascontiguousarray(x, dtype=np.float32),
                                np.zeros(x.shape[-1], np.float32), eps)
        return np.array(x, dtype=np.float32)

    def _input(self, x):
        if not hasattr(x, "shape") or len(x.shape) < 1:
            raise ValueError(f"{self.name}: the input must be an array [..., d_in = {self.d_in}]")
        if int(x.shape[-1]) != self.d_in:
            raise ValueError(f"{self.name}: the input has {x.shape[-1]} values per token, but the "
                             f"SAE reads d_in = {self.d_in}")
        return x

    def __repr__(self) -> str:
        hooks = self.hook_in if self.hook_out in (None, self.hook_in) else f"{self.hook_in} -> {self.hook_out}"
        extra = f", k={self.k}" if self.k else ""
        return (f"<gemmacpp.sae.SAE {self.name!r}: {self.kind} {self.architecture}{extra}, "
                f"{self.d_in} -> {self.d_sae} -> {self.d_out}, {np.dtype(self.W_enc.dtype).name}, "
                f"hook {hooks}{', input x/rms(x)' if self.input_norm else ''}>")
