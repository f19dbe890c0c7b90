"""Memory-mapped weight files: safetensors (single or sharded) and GGUF v2/v3.

    f = gemmacpp.weights.open("model.gguf")
    f.format, f.metadata, f.names(), f.info("token_embd.weight")
    w = f["blk.0.attn_q.weight"]   # a read-only NumPy view, or a QuantizedTensor of raw blocks

Nothing is copied: arrays view the mapped file, and keep the mapping alive after the WeightFile
is gone. A truncated or corrupt file raises ValueError naming the file and the problem.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from . import _core
from ._arrays import bfloat16
from .quant import QuantizedTensor

_NUMPY_DTYPES = {
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
    "float64": np.dtype(np.float64),
    "int8": np.dtype(np.int8),
    "int32": np.dtype(np.int32),
    "int64": np.dtype(np.int64),
    "uint8": np.dtype(np.uint8),
    "bool": np.dtype(np.bool_),
}


@dataclass(frozen=True)
class TensorInfo:
    """How one tensor is stored. type: a NumPy dtype name ("bfloat16") or a GGML type ("Q4_K");
    shape in NumPy order; offset: of its first byte in `file`."""

    name: str
    type: str
    shape: tuple
    nbytes: int
    offset: int
    file: str
    quantized: bool
    supported: bool


class WeightFile:
    """A parsed weight file (or safetensors checkpoint folder); a read-only mapping of tensors."""

    def __init__(self, core_file):
        self._f = core_file
        self._metadata = None

    @property
    def format(self) -> str:
        """"gguf" or "safetensors"."""
        return self._f.format

    @property
    def path(self) -> str:
        return self._f.path

    @property
    def metadata(self) -> dict:
        """GGUF key/values (arrays as lists) or safetensors __metadata__ (strings)."""
        if self._metadata is None:
            self._metadata = self._f.metadata()
        return self._metadata

    def metadata_types(self) -> dict:
        """The stored type of each metadata value: "uint32", "string", "array[int32]" ..."""
        return self._f.metadata_types()

    def names(self) -> list:
        """Tensor names in file order."""
        return self._f.names()

    def __iter__(self):
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._f)

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name in self._f

    def info(self, name: str) -> TensorInfo:
        self._check_name(name)
        return TensorInfo(**self._f.tensor_info(name))

    def __getitem__(self, name: str):
        """F32/F16/BF16 (and other plain types): a read-only NumPy array viewing the file.
        Quantized GGML types: a QuantizedTensor whose data is the raw blocks, uint8 [rows, row_bytes]."""
        info = self.info(name)
        if not info.supported:
            raise NotImplementedError(
                f"{name!r} in {self.path!r} is stored as {info.type}, which gemmacpp does not read")
        raw = self._raw(name, info)
        if info.quantized:
            k = info.shape[-1] if info.shape else 1
            rows = int(np.prod(info.shape[:-1], dtype=np.int64)) if len(info.shape) > 1 else 1
            data = raw.reshape(rows, info.nbytes // rows if rows else 0)
            return QuantizedTensor(data=data, qtype=info.type, shape=tuple(info.shape))
        dtype = bfloat16() if info.type == "bfloat16" else _NUMPY_DTYPES[info.type]
        return raw.view(dtype).reshape(info.shape)

    def raw_bytes(self, name: str) -> np.ndarray:
        """The stored bytes of any tensor (supported type or not), as a read-only uint8 view."""
        return self._raw(name, self.info(name))

    def _raw(self, name, info) -> np.ndarray:
        if info.nbytes == 0:
            a = np.zeros(0, np.uint8)
            a.flags.writeable = False
            return a
        return np.frombuffer(self._f.tensor_bytes(name), dtype=np.uint8)

    def _check_name(self, name):
        if name not in self:
            raise KeyError(f"{self.path!r} has no tensor named {name!r}")

    def __repr__(self) -> str:
        return f"<WeightFile {self.format} {self.path!r}: {len(self)} tensors>"


def open(path) -> WeightFile:  # noqa: A001 (the module's verb, as in gemmacpp.weights.open)
    """A .gguf or .safetensors file, a model.safetensors.index.json, or a checkpoint folder."""
    return WeightFile(_core.open_weights(os.fspath(path)))


def _short(value, limit=8):
    """A metadata value for a terminal: long arrays summarised, long strings cut."""
    if isinstance(value, list):
        if len(value) <= limit:
            return "[" + ", ".join(_short(v, limit) for v in value) + "]"
        head = ", ".join(_short(v, limit) for v in value[:3])
        return f"[{head}, ... {len(value)} items]"
    text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."


def describe(f: WeightFile) -> str:
    """The format, metadata and tensor table (name, type, shape, MiB) of a weight file."""
    lines = [f"{f.path}: {f.format}, {len(f)} tensors"]
    if f.metadata:
        lines.append("\nmetadata:")
        width = max(len(k) for k in f.metadata)
        lines += [f"  {k:<{width}}  {_short(v)}" for k, v in f.metadata.items()]
    infos = [f.info(n) for n in f]
    if infos:
        lines.append("\ntensors:")
        nw = max(len(i.name) for i in infos)
        tw = max(max(len(i.type) for i in infos), 4)
        lines.append(f"  {'name':<{nw}}  {'type':<{tw}}  {'shape':<18}  {'MiB':>9}")
        for i in infos:
            shape = "[" + ", ".join(map(str, i.shape)) + "]"
            note = "" if i.supported else "  (unsupported)"
            lines.append(f"  {i.name:<{nw}}  {i.type:<{tw}}  {shape:<18}  {i.nbytes / 2**20:9.3f}{note}")
        total = sum(i.nbytes for i in infos)
        counts = {}
        for i in infos:
            counts[i.type] = counts.get(i.type, 0) + 1
        kinds = ", ".join(f"{t} x{n}" for t, n in counts.items())
        lines.append(f"\n  total {total / 2**20:.1f} MiB in {len(infos)} tensors ({kinds})")
    return "\n".join(lines)
