"""PaliGemma 1 (Gemma) and 2 (Gemma 2, sliding windows shorter than the prefix) against
transformers on small random checkpoints: soft tokens, prefix-LM logits (image + prefix
bidirectional, suffix causal), positions from 1."""
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import gemmacpp as gc
from vision_fixtures import IMG, REL_TOL, assert_soft_tokens_match, pixels, rel_err

PREFIX = [IMG] * 16 + [2, 10, 11, 12, 108]   # image tokens, BOS, prompt, "\n"
SUFFIX = [20, 21, 22, 23, 1]


def hf_logits(model, ids, types, px):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), pixel_values=px,
                     token_type_ids=torch.tensor([types])).logits.double().numpy()


def test_soft_tokens_match(paligemma):
    assert_soft_tokens_match(paligemma, pixels(2, 3), (2, 16, 64))


def test_prefix_logits_match(paligemma):
    folder, ref = paligemma
    m = gc.load(folder)
    px = pixels(1, 4)
    got = m.forward(PREFIX, images=px.numpy())
    want = hf_logits(ref, PREFIX, [0] * len(PREFIX), px)
    assert rel_err(got, want) < REL_TOL
    # The prefix is bidirectional: a causal prefix would give other logits.
    causal = hf_logits(ref, PREFIX, [1] * len(PREFIX), px)
    assert rel_err(got, causal) > 100 * REL_TOL


def test_suffix_is_causal_after_the_prefix(paligemma):
    folder, ref = paligemma
    m = gc.load(folder)
    px = pixels(1, 5)
    cache = m.new_cache(1, 64)
    m.forward(PREFIX, cache=cache, images=px.numpy())
    got = m.forward(SUFFIX, cache=cache)
    want = hf_logits(ref, PREFIX + SUFFIX, [0] * len(PREFIX) + [1] * len(SUFFIX), px)
    assert rel_err(got[0], want[0, len(PREFIX):]) < REL_TOL


def test_prompt_layout(paligemma):
    folder, _ = paligemma
    m = gc.load(folder)
    assert m._images.expand_prompt([2, 10, 11], 1) == [IMG] * 16 + [2, 10, 11]
    with pytest.raises(ValueError, match="image tokens"):
        m.forward(PREFIX[4:], images=pixels(1, 6).numpy())
