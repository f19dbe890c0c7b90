"""Checkpoints stored in bfloat16 (as Google releases them), whose reference is transformers loading
the same files in float32 (dtype=float32, eager): the weights are read in place, and nothing is
rounded to the stored dtype that transformers keeps in float32. In particular the embedding's
sqrt(d) factor: transformers applies it in the table's dtype *as loaded*, float32 here, so a
bfloat16 file must not round it (Gemma 3n, Gemma 4, EmbeddingGemma 2). Gemma 2/3 are covered by
test_gemma_forward.test_bfloat16_sharded_checkpoint."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import gemmacpp as gc

import test_embedding_gemma2 as eg2
import test_gemma3n as g3n
import test_gemma4 as g4
from test_gemma_forward import rel_err

REL_TOL = 1e-4


def saved_bf16(model, folder):
    model.to(torch.bfloat16).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("family, name", [("gemma3n", "altup4"), ("gemma4", "e2b"), ("gemma4", "dense")])
def test_bf16_decoder_matches_transformers_in_float32(family, name, tmp_path):
    mod = {"gemma3n": g3n, "gemma4": g4}[family]
    folder = saved_bf16(mod.hf_model(name), tmp_path)
    cls = {"gemma3n": transformers.Gemma3nForCausalLM, "gemma4": transformers.Gemma4ForCausalLM}[family]
    ref = cls.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    toks = mod.tokens(0)
    model = gc.load(str(folder))
    assert gc.weights.open(str(folder)).info("model.embed_tokens.weight").type == "bfloat16"
    logits, acts = model.run_with_cache(toks)
    with torch.no_grad():
        out = ref(torch.from_numpy(np.asarray(toks)), output_hidden_states=True)
    # The scaled embedding is exact: a bfloat16 value times sqrt(d) in float32, as transformers.
    emb = out.hidden_states[0].numpy()
    got = acts["hook_embed"]
    if emb.ndim == got.ndim + 1:  # Gemma 3n: transformers' AltUp streams; the first is the embedding
        emb = emb[0]
    np.testing.assert_array_equal(got, emb)
    assert rel_err(np.asarray(logits), out.logits.double().numpy()) <= REL_TOL


def test_bf16_embedding_gemma2_matches_transformers_in_float32(tmp_path):
    torch.manual_seed(3)
    model = transformers.EmbeddingGemma2TextModel(eg2.config()).eval()
    eg2.randomize(model, 4)
    folder = saved_bf16(model, tmp_path)
    eg2.save_tokenizer(str(folder))
    ref = transformers.EmbeddingGemma2TextModel.from_pretrained(folder, dtype=torch.float32,
                                                                attn_implementation="eager").eval()
    m = gc.load(str(folder))
    tokens, lengths, _ = m.tokenize(eg2.texts(3, seed=5, lengths=(4, 30)))
    mask = np.arange(tokens.shape[1])[None, :] < np.array(lengths)[:, None]
    _, acts = m.run_with_cache(tokens, lengths=lengths)
    with torch.no_grad():
        out = ref(torch.from_numpy(tokens), attention_mask=torch.from_numpy(mask.astype(np.int64)),
                  output_hidden_states=True)
    np.testing.assert_array_equal(acts["hook_embed"][mask], out.hidden_states[0].numpy()[mask])
    assert rel_err(acts["hook_projected"][mask], out.last_hidden_state.double().numpy()[mask]) < REL_TOL
