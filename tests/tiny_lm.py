"""A tiny random Gemma 3 checkpoint with a tiny text tokenizer, for tests that score or evaluate
text (gemmacpp's scoring, the lm-eval backend, the eval CLI) against transformers.

The tokenizer is a Gemma-style BPE tokenizer.json (spaces normalised to U+2581, no pre-tokenizer,
<bos> added by the post-processor) over a 128-piece vocabulary: specials, ASCII letters, digits,
some punctuation and a few merges, with <unk> for anything else (test texts stay in the alphabet).
Both transformers (AutoTokenizer) and gemmacpp (Tokenizer.from_hf) read it.
"""
import json
import os
import string

VOCAB_SIZE = 128
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]
CHARS = ["\u2581"] + list(string.ascii_lowercase) + list(string.ascii_uppercase) + list(string.digits) + \
    list(".,?!:'-\n")
# Merges in priority order; each merged piece joins the vocabulary after the characters.
MERGES = [("\u2581", "t"), ("h", "e"), ("\u2581t", "he"), ("i", "n"), ("a", "n"), ("e", "r"),
          ("\u2581", "a"), ("o", "n"), ("r", "e"), ("a", "t"), ("e", "n"), ("i", "s"), ("\u2581", "is"),
          ("o", "r"), ("e", "s"), ("\u2581", "c"), ("\u2581", "s"), ("\u2581", "o"), ("\u2581o", "f"),
          ("\u2581", "w"), ("\u2581", "b"), ("\u2581", "p"), ("i", "t"), ("a", "r"), ("\u2581a", "n"),
          ("\u2581an", "d"), ("in", "g"), ("\u2581", "f"), ("\u2581", "m"), ("l", "e"), ("\u2581", "d"),
          ("o", "u"), ("\u2581", "h"), ("s", "t"), ("\u2581", "i"), ("\u2581i", "s"), ("\u2581", "T"),
          ("\u2581T", "he"), ("\u2581", "Q"), ("\u2581", "A"), ("\u2581", "1"), ("\u2581", "2"),
          ("\u2581", "3"), ("\u2581", "4"), ("\u2581", "5"), ("\u2581", "6"), ("\u2581", "7"),
          ("\u2581", "8"), ("\u2581", "9")]


def tokenizer_json() -> dict:
    vocab = {}
    for piece in SPECIALS + CHARS + [a + b for a, b in MERGES]:
        vocab.setdefault(piece, len(vocab))
    assert len(vocab) <= VOCAB_SIZE, len(vocab)
    special = lambda i, p: {"id": i, "content": p, "single_word": False, "lstrip": False, "rstrip": False,
                            "normalized": False, "special": True}
    replace = lambda a, b: {"type": "Replace", "pattern": {"String": a}, "content": b}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [special(i, p) for i, p in enumerate(SPECIALS)],
        "normalizer": replace(" ", "\u2581"),
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<bos>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]}}},
        "decoder": {"type": "Sequence", "decoders": [replace("\u2581", " "), {"type": "ByteFallback"},
                                                     {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": [[a, b] for a, b in MERGES]},
    }


def write_tokenizer(folder) -> None:
    """tokenizer.json and the tokenizer_config.json transformers needs to read it."""
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(), f, ensure_ascii=False)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<bos>", "eos_token": "<eos>",
                   "pad_token": "<pad>", "unk_token": "<unk>", "model_max_length": 1 << 30}, f)


def build_checkpoint(folder, *, seed=0, sliding_window=6):
    """A random float32 Gemma 3 model (sliding and global layers, window shorter than the test
    texts) saved with the tokenizer into folder; returns the transformers model."""
    import torch
    import transformers

    cfg = transformers.Gemma3TextConfig(
        vocab_size=VOCAB_SIZE, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=12, query_pre_attn_scalar=24,
        sliding_window=sliding_window, max_position_embeddings=4096, rms_norm_eps=1e-6,
        initializer_range=0.3, attn_implementation="eager",
        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        pad_token_id=0, eos_token_id=1, bos_token_id=2)
    torch.manual_seed(seed)
    model = transformers.Gemma3ForCausalLM(cfg).eval().to(torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(-0.6, 0.6)
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    write_tokenizer(folder)
    return model
