"""Bitwise snapshots of every model family's outputs, for refactors that must not change a bit.

    python scripts/bitwise_snapshot.py record  DIR   # build small checkpoints once, record outputs
    python scripts/bitwise_snapshot.py compare DIR   # run again on the same checkpoints, compare

DIR keeps the checkpoints (small random Gemma 1/2/3 in safetensors and GGUF, RecurrentGemma,
SigLIP, Gemma 3 with images, PaliGemma 1/2, Gemma 3n, written by the tests' own builders) and the recorded
arrays, so that a comparison never depends on rebuilding the same random weights. Each family is
run at 1 and 2 threads through the public API only: full and ragged forwards, last_only, every
hook point (run_with_cache with all names, which takes the plain attention path that writes out
scores and patterns), cached prefill then ragged decode steps past the sliding windows, a forked
cache, hook edits, vision encodes and image prompts, and the default model (Gemma 3 270M) when it
is installed. compare prints every array that differs in any bit and exits non-zero if one does.
"""
import argparse
import os
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "models")]

import gemmacpp as gc  # noqa: E402

TEXT_HF = ["gemma1-mha", "gemma1-mqa", "gemma2-gqa", "gemma2-mqa", "gemma3-gqa", "gemma3-mqa"]
TEXT_GGUF = [("gemma3", "Q4_K"), ("gemma2", "Q8_0"), ("gemma", "Q4_0"), ("gemma3", "F16")]
GRIFFIN = ["griffin-mqa", "griffin-mha-bias"]
GEMMA3N = ["altup4"]  # test_gemma3n's configs


class _Factory:
    """The part of pytest's tmp_path_factory that the test builders use."""

    def __init__(self, root):
        self.root = pathlib.Path(root)

    def mktemp(self, name):
        p = self.root / name
        p.mkdir(parents=True, exist_ok=True)
        return p


def build_checkpoints(ckpt):
    """Writes every checkpoint under ckpt (once); returns {name: path}."""
    import torch  # noqa: F401
    import test_gemma_forward
    import test_gemma_gguf
    import test_griffin
    import vision_fixtures
    os.makedirs(ckpt, exist_ok=True)
    f = _Factory(ckpt)
    out = {}
    for name in TEXT_HF:
        if not (f.root / name).exists():
            test_gemma_forward.build(name, f)
        out[name] = str(f.root / name)
    for family, qtype in TEXT_GGUF:
        path = f.root / f"{family}-{qtype}.gguf"
        if not path.exists():
            sizes = test_gemma_gguf.K_QUANT_SIZES if qtype.endswith("_K") else {}
            test_gemma_gguf.write_gguf(test_gemma_gguf.random_model(family, **sizes), family, qtype, path)
        out[path.stem] = str(path)
    for name in GRIFFIN:
        if not (f.root / name).exists():
            test_griffin.build(name, str(f.mktemp(name)))
        out[name] = str(f.root / name)
    for name in GEMMA3N:
        if not (f.root / f"gemma3n-{name}").exists():
            import test_gemma3n
            test_gemma3n.hf_model(name).save_pretrained(f.mktemp(f"gemma3n-{name}"))
        out[f"gemma3n-{name}"] = str(f.root / f"gemma3n-{name}")
    if not (f.root / "siglip").exists():
        vision_fixtures.build_siglip(f)
    out["siglip"] = str(f.root / "siglip")
    if not (f.root / "gemma3_vision").exists():
        vision_fixtures.build_gemma3(f)
    out["gemma3_vision"] = str(f.root / "gemma3_vision")
    for name in ("paligemma1", "paligemma2"):
        if not (f.root / name).exists():
            vision_fixtures.build_paligemma(f, name)
        out[name] = str(f.root / name)
    return out


def token_rows(vocab, seed, lengths):
    rng = np.random.default_rng(seed)
    return [rng.integers(3, vocab, n).tolist() for n in lengths]


def hook_names(m, prefix):
    """The hook names to record: all of them, or in a comparison only those the recording had
    (asking for a new hook point, such as an attention layer's scores, may change the path a
    forward takes, so it is compared by the tests, not here)."""
    names = m.hook_names()
    if KNOWN is None:
        return names
    return [n for n in names if f"{prefix}/{n}" in KNOWN]


KNOWN = None  # in a comparison: "<case prefix>/<hook name>" of every recorded activation


def text_cases(name, m, rec):
    vocab = m.config["vocab_size"]
    full = np.array(token_rows(vocab, 1, [29, 29]))
    rec(f"{name}/full", m.forward(full))
    ragged = token_rows(vocab, 2, [29, 13, 1, 22])
    rec(f"{name}/ragged", m.forward(ragged))
    rec(f"{name}/ragged_last", m.forward(ragged, last_only=True))
    logits, acts = m.run_with_cache(ragged, names=hook_names(m, f"{name}/act"))
    rec(f"{name}/hooked_logits", logits)
    for k, v in acts.items():
        rec(f"{name}/act/{k}", v)
    # Cached: ragged prefill, then decode steps (some rows idle) past every window.
    cache = m.new_cache(4, 64)
    rec(f"{name}/prefill", m.forward(ragged, cache=cache, last_only=True))
    rng = np.random.default_rng(3)
    for step in range(9):
        toks = rng.integers(3, vocab, (4, 2 if step == 4 else 1))
        lengths = [2 if step == 4 else 1, 0 if step % 3 == 1 else 1, 1, 1] if step == 4 else \
            [1, 0 if step % 3 == 1 else 1, 1, 1]
        rec(f"{name}/decode{step}", m.forward(toks, cache=cache, lengths=lengths))
    # Hooks through the cache on one step.
    logits, acts = m.run_with_cache(rng.integers(3, vocab, (4, 3)), cache=cache.copy(),
                                    names=hook_names(m, f"{name}/cached_act"))
    rec(f"{name}/cached_hooked_logits", logits)
    for k, v in acts.items():
        rec(f"{name}/cached_act/{k}", v)
    # Fork two continuations of sequence 0.
    fork = cache.select([0, 0, 2])
    rec(f"{name}/fork", m.forward(rng.integers(3, vocab, (3, 4)), cache=fork))
    # An edit: zero one attention head (or, on Griffin's recurrent blocks, halve a_t).
    names = hook_names(m, f"{name}/act")
    edits = {}
    z = [n for n in names if n.endswith("attn.hook_z")]
    if z:
        edits[z[-1]] = lambda a, n: a[:, :, 0].fill(0)
    a = [n for n in names if n.endswith("rglru.hook_a")]
    if a:
        edits[a[0]] = lambda x, n: x * np.float32(0.5)
    p = [n for n in names if n.endswith("attn.hook_pattern")]
    if p:
        edits[p[0]] = lambda x, n: x * np.float32(0.9)
    with m.hooks(edits):
        rec(f"{name}/edited", m.forward(ragged))


def vision_cases(paths, rec):
    import vision_fixtures as vf
    s = gc.load(paths["siglip"])
    px = vf.pixels(3, 11, size=35).numpy()
    rec("siglip/encode", s.encode_image(px, preprocess=False))
    out, acts = s.run_with_cache(px, preprocess=False, names=hook_names(s, "siglip/act"))
    rec("siglip/hooked", out)
    for k, v in acts.items():
        rec(f"siglip/act/{k}", v)
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)
    rec("siglip/uint8", s.encode_image([img]))

    g = gc.load(paths["gemma3_vision"])
    px = vf.pixels(3, 6).numpy()
    rows = np.array(vf.ROWS)
    rec("gemma3v/soft", g.encode_image(px, preprocess=False))
    rec("gemma3v/logits", g.forward(rows, images=px))
    logits, acts = g.run_with_cache(rows, images=px, names=hook_names(g, "gemma3v/act"))
    rec("gemma3v/hooked", logits)
    for k, v in acts.items():
        rec(f"gemma3v/act/{k}", v)
    cache = g.new_cache(1, 64)
    rec("gemma3v/prefill", g.forward([vf.ROWS[0]], cache=cache, images=px[:2]))
    for step in range(4):
        rec(f"gemma3v/decode{step}", g.forward([[30 + step]], cache=cache))
    for name in ("paligemma1", "paligemma2"):
        p = gc.load(paths[name])
        prefix = [vf.IMG] * 16 + [2, 10, 11, 12, 108]
        pxp = vf.pixels(1, 4).numpy()
        rec(f"{name}/prefix", p.forward(prefix, images=pxp))
        cache = p.new_cache(1, 64)
        p.forward(prefix, cache=cache, images=pxp)
        rec(f"{name}/suffix", p.forward([20, 21, 22, 23, 1], cache=cache))
        logits, acts = p.run_with_cache(prefix, images=pxp, names=hook_names(p, f"{name}/act"))
        rec(f"{name}/hooked", logits)
        for k, v in acts.items():
            rec(f"{name}/act/{k}", v)


def default_model_cases(rec):
    try:
        m = gc.load()
    except ImportError:
        print("default model not installed: skipped")
        return
    ids = m.tokenizer.encode("The capital of France is a city called", add_bos=True)
    cache = m.new_cache(1, 128)
    rec("default/prefill", m.forward(ids, cache=cache, last_only=True))
    tok = int(np.argmax(rec.last[0, -1]))
    for step in range(6):
        logits = m.forward([tok], cache=cache)
        rec(f"default/decode{step}", logits)
        tok = int(np.argmax(logits[0, -1]))
    prompts = [ids, ids[:5], m.tokenizer.encode("Once upon a time", add_bos=True)]
    rec("default/ragged_last", m.forward(prompts, last_only=True))
    logits, acts = m.run_with_cache(ids[:6], names=["blocks.0.hook_resid_post", "blocks.5.attn.hook_pattern",
                                                    "ln_final.hook_normalized"])
    rec("default/hooked_last", logits[:, -1])
    for k, v in acts.items():
        rec(f"default/act/{k}", v)


class Recorder:
    def __init__(self):
        self.arrays = {}
        self.last = None

    def __call__(self, key, value):
        value = np.asarray(value)
        assert key not in self.arrays, key
        self.arrays[key] = value
        self.last = value


def run_all(paths):
    out = {}
    for threads in (1, 2):
        gc.set_num_threads(threads)
        rec = Recorder()
        for name in TEXT_HF + [f"{f}-{q}" for f, q in TEXT_GGUF] + GRIFFIN + [f"gemma3n-{n}" for n in GEMMA3N]:
            text_cases(name, gc.load(paths[name]), rec)
        vision_cases(paths, rec)
        default_model_cases(rec)
        out.update({f"t{threads}/{k}": v for k, v in rec.arrays.items()})
    return out


def same_bits(a, b):
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return a.tobytes() == b.tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["record", "compare"])
    ap.add_argument("dir")
    args = ap.parse_args()
    paths = build_checkpoints(os.path.join(args.dir, "checkpoints"))
    ref_path = os.path.join(args.dir, "outputs.npz")
    if args.mode == "compare":
        global KNOWN
        KNOWN = {k.split("/", 1)[1] for k in np.load(ref_path).files}
    arrays = run_all(paths)
    if args.mode == "record":
        np.savez(ref_path, **arrays)
        print(f"recorded {len(arrays)} arrays in {ref_path}")
        return 0
    ref = dict(np.load(ref_path))
    bad = [k for k in ref if k not in arrays or not same_bits(ref[k], arrays[k])]
    extra = sorted(set(arrays) - set(ref))
    for k in bad:
        got = arrays.get(k)
        why = "missing" if got is None else (
            f"shape {got.shape} vs {ref[k].shape}" if got.shape != ref[k].shape else
            f"max |diff| {np.max(np.abs(got.astype(np.float64) - ref[k])):.3g}")
        print(f"DIFFERS {k}: {why}")
    print(f"{len(ref) - len(bad)} of {len(ref)} arrays bitwise identical; {len(extra)} new arrays "
          f"(hook points that did not exist before){':' if extra else ''}")
    for k in extra[:20]:
        print(f"  new {k}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
