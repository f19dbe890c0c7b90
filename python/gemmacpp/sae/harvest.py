"""Activation harvesting: a model's activations at some hook points over a stream of texts,
written as sharded safetensors with a manifest, resumable after an interruption.

    gc.harvest(model, texts, ["blocks.6.hook_resid_post"], "acts/", shard_tokens=65536)

out_dir/manifest.json describes the run (model, names, widths, dtype, settings) and lists the
complete shards; out_dir/shard_00000.safetensors ... hold, for the tokens of the shard in corpus
order, one [n, width] tensor per hook name (attention heads flattened), "token_ids" int32 [n],
"text_index" int64 [n] (the text's index in the stream) and "position" int32 [n] (the token's
position in its text). A shard is written to a temporary file and renamed, and the manifest is
rewritten (also atomically) after it: a run killed at any point leaves only complete shards
listed, and harvest() with the same arguments continues after the last of them (the texts must
be the same stream: the tokens it skips are checked against a hash kept in the manifest).

SAELens (6.x) trains from cached activations stored as a Hugging Face `datasets` folder
(columns <hook name> [context_size, d_in] and token_ids); to_saelens() streams the shards into
that layout.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os

import numpy as np

from .. import weights
from .._arrays import bfloat16
from .capture import capture, padded, text_batches
from .files import write_json, write_safetensors

FORMAT = "gemmacpp-activations"
_DTYPES = {"float32": lambda: np.dtype(np.float32), "float16": lambda: np.dtype(np.float16),
           "bfloat16": bfloat16}  # ml_dtypes imported only when asked for


def _settings(model, names, dtype, shard_tokens, max_len, skip_bos, widths):
    return {"format": FORMAT, "version": 1, "model": model.path, "names": list(names),
            "widths": widths, "dtype": dtype, "shard_tokens": int(shard_tokens),
            "max_len": max_len, "skip_bos": bool(skip_bos)}


def _bar(progress, total):
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if progress:
            from .._extras import missing
            raise missing("tqdm", "progress=True") from None
        return None
    return tqdm(total=total, desc="harvest", unit="text")


class _Writer:
    """Buffers token rows and writes shards of exactly shard_tokens rows (the last may be short),
    updating the manifest after each."""

    def __init__(self, out_dir, manifest, dtype):
        self.out_dir, self.manifest, self.dtype = out_dir, manifest, dtype
        self.names = manifest["names"]
        self.parts = []  # [(acts {name: [n, w]}, token_ids, text_index, position)]
        self.buffered = 0
        self.hash = hashlib.sha256()

    def add(self, acts, token_ids, text_index, position):
        self.parts.append((acts, token_ids, text_index, position))
        self.buffered += len(token_ids)
        while self.buffered >= self.manifest["shard_tokens"]:
            self.flush(self.manifest["shard_tokens"])

    def flush(self, n=None):
        if self.buffered == 0:
            return
        n = self.buffered if n is None else n
        acts = {k: np.concatenate([p[0][k] for p in self.parts]) for k in self.names}
        ids, texts, pos = (np.concatenate([p[i] for p in self.parts]) for i in (1, 2, 3))
        rest = ({k: v[n:] for k, v in acts.items()}, ids[n:], texts[n:], pos[n:])
        shards = self.manifest["shards"]
        entry = write_shard(self.out_dir, len(shards), self.dtype,
                            {k: acts[k][:n] for k in self.names}, ids[:n], texts[:n], pos[:n])
        self.hash.update(ids[:n].astype(np.int64).tobytes())
        shards.append(dict(entry, tokens_sha256=self.hash.hexdigest()))
        self.manifest["tokens"] = sum(s["tokens"] for s in shards)
        write_json(os.path.join(self.out_dir, "manifest.json"), self.manifest)
        self.parts = [rest] if len(rest[1]) else []
        self.buffered = len(rest[1])


def checked_settings(model, names, dtype, shard_tokens, max_len, skip_bos) -> dict:
    """The manifest's settings of a harvest, after checking its arguments against the model."""
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError("harvest: no hook names given")
    if dtype not in _DTYPES:
        raise ValueError(f"harvest: dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    if int(shard_tokens) < 1:
        raise ValueError(f"harvest: shard_tokens must be >= 1, got {shard_tokens}")
    known = set(model.hook_names())
    for n in names:
        if n not in known:
            raise ValueError(f"harvest: no hook point named {n!r} (see model.hook_names())")
    from .splice import hook_width
    widths = {n: hook_width(model.config, n) for n in names}
    return _settings(model, names, dtype, shard_tokens, max_len, skip_bos, widths)


def open_manifest(out_dir, settings) -> dict:
    """The manifest of out_dir's run with these settings (a fresh one if there is none), after
    removing the temporary files of an interrupted write; a run with other settings is refused."""
    os.makedirs(out_dir, exist_ok=True)
    for stale in glob.glob(os.path.join(out_dir, "*.tmp*")):
        os.remove(stale)  # a write the interruption cut short
    path = os.path.join(out_dir, "manifest.json")
    if not os.path.exists(path):
        return dict(settings, shards=[], tokens=0, texts=0, complete=False)
    with open(path) as f:
        manifest = json.load(f)
    for key, value in settings.items():
        if manifest.get(key) != value:
            raise ValueError(f"harvest: {out_dir!r} holds a run with {key} = "
                             f"{manifest.get(key)!r}, not {value!r}; use another out_dir")
    return manifest


def write_shard(out_dir, index: int, dtype: str, acts, ids, texts, pos) -> dict:
    """Writes shard `index` (activations {name: [n, width]} stored as `dtype`, and the tokens'
    ids, text indices and positions) and returns its manifest entry, less the running token
    hash."""
    file = f"shard_{index:05d}.safetensors"
    tensors = {k: a.astype(_DTYPES[dtype]()) for k, a in acts.items()}
    tensors.update(token_ids=ids.astype(np.int32), text_index=texts.astype(np.int64),
                   position=pos.astype(np.int32))
    write_safetensors(os.path.join(out_dir, file), tensors, {"format": FORMAT})
    n = len(ids)
    return {"file": file, "tokens": int(n), "first": [int(texts[0]), int(pos[0])],
            "last": [int(texts[n - 1]), int(pos[n - 1])]}


def _resume_point(manifest):
    """(text index, position) of the last token in a shard, or None."""
    return tuple(manifest["shards"][-1]["last"]) if manifest["shards"] else None


def harvest(model, texts, names, out_dir, *, dtype: str = "float32", shard_tokens: int = 65536,
            batch_size: int = 8, max_len: int | None = 1024, skip_bos: bool = True,
            progress=None) -> dict:
    """Runs `model` over `texts` (an iterable of strings, tokenized with BOS, or of token id
    lists) and writes the activations at the hook points `names` (a name or a list) to out_dir
    as shards of shard_tokens tokens (safetensors, `dtype` float32/float16/bfloat16) plus
    manifest.json; returns the manifest. Streaming: memory holds one batch and at most one
    shard. Each forward stops after the last hook point it needs. Texts longer than max_len are
    cut. skip_bos: leave out each text's BOS token (Gemma's BOS activations are outliers that
    dominate an SAE's training). progress: a tqdm bar (default: when tqdm is installed).

    Resumable: if out_dir holds the manifest of an interrupted run with the same settings, the
    run continues after its last complete shard (the skipped texts are tokenized again and
    checked against the shards' token hash, so a different stream is an error, never a gap or a
    duplicate). A complete run is returned as it is."""
    settings = checked_settings(model, names, dtype, shard_tokens, max_len, skip_bos)
    names = settings["names"]
    manifest = open_manifest(out_dir, settings)
    path = os.path.join(out_dir, "manifest.json")
    if manifest.get("complete"):
        return manifest
    resume = _resume_point(manifest)
    writer = _Writer(out_dir, manifest, dtype)
    bar = _bar(progress, len(texts) if hasattr(texts, "__len__") else None)
    bos = None
    try:
        bos = model.tokenizer.bos_id
    except FileNotFoundError:
        pass
    texts_done = 0
    for first, batch in text_batches(model, texts, batch_size=batch_size, max_len=max_len):
        arr, mask = padded(batch)
        if skip_bos and bos is not None:
            mask[:, 0] &= arr[:, 0] != bos
        if resume is not None:  # drop what the shards already hold, checking it is the same
            t_last, p_last = resume
            index = first + np.arange(len(batch))[:, None]
            pos = np.arange(arr.shape[1])[None, :]
            done = (index < t_last) | ((index == t_last) & (pos <= p_last))
            writer.hash.update(arr[mask & done].astype(np.int64).tobytes())
            mask &= ~done
            if first + len(batch) > t_last:
                if writer.hash.hexdigest() != manifest["shards"][-1]["tokens_sha256"]:
                    raise ValueError(f"harvest: the texts differ from those of the interrupted run "
                                     f"in {out_dir!r} (their tokens do not match the shards)")
                resume = None
        if mask.any():
            acts = capture(model, [list(r) for r in batch], names)
            rows_b, rows_t = np.nonzero(mask)
            writer.add({n: acts[n].reshape(*arr.shape, -1)[mask] for n in names}, arr[mask],
                       first + rows_b, rows_t)
        texts_done = first + len(batch)
        if bar is not None:
            bar.update(len(batch))
    if resume is not None:
        raise ValueError(f"harvest: the texts ended before the point the interrupted run in "
                         f"{out_dir!r} had reached")
    writer.flush()
    if bar is not None:
        bar.close()
    manifest.update(texts=texts_done, complete=True)
    write_json(path, manifest)
    return manifest


def read_manifest(out_dir) -> dict:
    with open(os.path.join(out_dir, "manifest.json")) as f:
        manifest = json.load(f)
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{out_dir!r} is not a gemmacpp activation harvest")
    return manifest


def shards(out_dir):
    """Yields each shard of a harvest as {name: read-only array mapped from the file}."""
    for s in read_manifest(out_dir)["shards"]:
        f = weights.open(os.path.join(out_dir, s["file"]))
        yield {n: f[n] for n in f.names()}


def to_saelens(out_dir, dest, *, name: str | None = None, context_size: int = 128,
               column: str | None = None, dtype: str = "float32") -> int:
    """Writes a harvest as the cached-activation dataset SAELens trains from (a Hugging Face
    `datasets` folder, as CacheActivationsRunner writes it: a column named after the hook,
    Array2D [context_size, d_in], and token_ids [context_size] int32), streaming shard by shard.
    The token stream is cut into rows of context_size tokens (a last partial row is dropped).
    name: the hook point (default: the only one); column: the column's name (default: name, a
    TransformerLens name SAELens' hook_name will match for residual, MLP and attention outputs).
    Returns the number of rows. Needs the `datasets` package."""
    import datasets
    manifest = read_manifest(out_dir)
    if name is None:
        if len(manifest["names"]) != 1:
            raise ValueError(f"to_saelens: the harvest holds {manifest['names']}; choose one with name=")
        name = manifest["names"][0]
    if name not in manifest["names"]:
        raise ValueError(f"to_saelens: the harvest has no {name!r} (it has {manifest['names']})")
    column = column or name
    tmp = os.path.join(dest, ".tmp_shards")
    os.makedirs(tmp, exist_ok=True)
    parts, carry_a, carry_t, rows = [], None, None, 0
    for i, shard in enumerate(shards(out_dir)):
        a, t = np.asarray(shard[name], np.float32), np.asarray(shard["token_ids"], np.int32)
        if carry_a is not None:
            a, t = np.concatenate([carry_a, a]), np.concatenate([carry_t, t])
        n = len(t) // context_size * context_size
        carry_a, carry_t = a[n:], t[n:]
        if n == 0:
            continue
        d = a.shape[1]
        features = datasets.Features({
            column: datasets.Array2D(shape=(context_size, d), dtype=dtype),
            "token_ids": datasets.Sequence(datasets.Value("int32"), length=context_size)})
        ds = datasets.Dataset.from_dict(
            {column: a[:n].reshape(-1, context_size, d), "token_ids": t[:n].reshape(-1, context_size)},
            features=features)
        part = os.path.join(tmp, f"shard_{i:05d}")
        ds.save_to_disk(part)
        parts.append(part)
        rows += n // context_size
    if not parts:
        raise ValueError(f"to_saelens: fewer than context_size = {context_size} tokens in {out_dir!r}")
    full = datasets.concatenate_datasets([datasets.load_from_disk(p) for p in parts])
    full.save_to_disk(os.path.join(dest, "data"))
    del full
    import shutil
    shutil.rmtree(tmp)
    for entry in os.listdir(os.path.join(dest, "data")):
        os.replace(os.path.join(dest, "data", entry), os.path.join(dest, entry))
    os.rmdir(os.path.join(dest, "data"))
    return rows
