"""Reading and writing the arrays of SAE files without copies where the format allows it:
uncompressed .npz members memory-mapped in place, and a plain safetensors writer (the package
depends on NumPy alone; safetensors files are read back through gemmacpp.weights, mapped)."""
from __future__ import annotations

import json
import os
import struct
import zipfile

import numpy as np

from .._arrays import bfloat16

_ST_DTYPES = {  # and bfloat16: "BF16" (_st_dtype)
    np.dtype(np.float32): "F32", np.dtype(np.float16): "F16",
    np.dtype(np.float64): "F64", np.dtype(np.int32): "I32", np.dtype(np.int64): "I64",
    np.dtype(np.int8): "I8", np.dtype(np.uint8): "U8", np.dtype(np.bool_): "BOOL",
}


def _st_dtype(dtype: np.dtype) -> str | None:
    if dtype.name == "bfloat16" and dtype == bfloat16():  # ml_dtypes imported only then
        return "BF16"
    return _ST_DTYPES.get(dtype)


def read_npz(path: str) -> tuple[dict, bool]:
    """The arrays of an .npz file by name (without the .npy suffix), and whether all of them are
    memory-mapped: members stored uncompressed (np.savez) are mapped read-only in place; a
    compressed member (np.savez_compressed) cannot be, and is read into memory."""
    arrays, mapped = {}, True
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        for info in zf.infolist():
            name = info.filename.removesuffix(".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                with zf.open(info) as member:
                    arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
                mapped = False
                continue
            f.seek(info.header_offset)
            local = f.read(30)
            if local[:4] != b"PK\x03\x04":
                raise ValueError(f"{path!r}: member {info.filename!r} has no local zip header")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            f.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            if dtype.hasobject:
                raise ValueError(f"{path!r}: member {info.filename!r} holds Python objects")
            count = int(np.prod(shape, dtype=np.int64))
            if f.tell() + count * dtype.itemsize > info.header_offset + 30 + name_len + extra_len + info.file_size:
                raise ValueError(f"{path!r}: member {info.filename!r} is truncated")
            arrays[name] = (np.memmap(path, dtype=dtype, mode="r", offset=f.tell(), shape=shape,
                                      order="F" if fortran else "C")
                            if count else np.zeros(shape, dtype))
    return arrays, mapped


def write_safetensors(path: str, tensors: dict, metadata: dict | None = None) -> None:
    """Writes `tensors` ({name: NumPy array}) as a safetensors file, atomically (a temporary file
    beside it, renamed into place once complete). metadata: {str: str}."""
    header, offset, arrays = {}, 0, []
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        st = _st_dtype(a.dtype)
        if st is None:
            raise TypeError(f"write_safetensors: {name!r} has dtype {a.dtype}, which safetensors "
                            "cannot store here")
        header[name] = {"dtype": st, "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        arrays.append(a)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for a in arrays:
                f.write(memoryview(a.reshape(-1).view(np.uint8)))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: str, obj) -> None:
    """json.dump to `path`, atomically."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
