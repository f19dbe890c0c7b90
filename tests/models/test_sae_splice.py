"""SAEs in the loop (model.saes): every SAE hook point and the spliced forward against a PyTorch
pipeline on the transformers model with the same SAE attached by PyTorch hooks, on small random
Gemma 2 and Gemma 3 models. The SAE in that pipeline is sae-lens's (its HookPoints give the
activations) when sae-lens is installed, else the float64 formulas of tests/sae_reference.py.

Cases: a JumpReLU SAE on hook_resid_post, a TopK SAE on hook_mlp_out, a ReLU SAE subtracting
b_dec on attn.hook_z (flattened o_proj input), a Gemma Scope 2 style skip transcoder
(ln2.hook_normalized -> hook_mlp_out) and a Gemma Scope 1 style transcoder (x / rms(x) of the
pre-MLP norm's input, without its gain -> hook_mlp_out).

Also: with the error term the logits are bitwise the plain ones (with nothing reading the SAE,
and with every SAE point recorded); feature ablation through hook_sae_acts_post equals the same
edit in the PyTorch pipeline; bad attachments raise named errors.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import gemmacpp as gc
from sae_reference import (SAELENS_ARCH, random_weights, redirect_hub, reference, rel_err,
                           saelens_from_state, write_gemma_scope_2)
from test_gemma_forward import COMMON, build

MODELS = ["gemma2-gqa", "gemma3-gqa"]
TOL = 1e-4  # model activations agree with transformers to ~1e-6; logits within 1e-4 (test_hooks)
SEQ = 21
D_SAE = 64

CASES = {  # name -> (hook_in, hook_out, architecture, kind, extra)
    "resid_post-jumprelu": ("blocks.1.hook_resid_post", None, "jumprelu", "sae", {}),
    "mlp_out-topk": ("blocks.1.hook_mlp_out", None, "topk", "sae", {}),
    "hook_z-relu-b_dec": ("blocks.0.attn.hook_z", None, "relu", "sae", {"apply_b_dec_to_input": True}),
    "gs2-skip-transcoder": ("blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out", "jumprelu",
                            "skip_transcoder", {}),
    "gs1-transcoder": ("blocks.1.hook_resid_mid", "blocks.1.hook_mlp_out", "jumprelu",
                       "transcoder", {"input_norm": "rms"}),
}


@pytest.fixture(scope="module", params=MODELS)
def pair(request, tmp_path_factory):
    folder, hf = build(request.param, tmp_path_factory)
    return request.param, gc.load(folder), hf


def tokens(seed, batch=2):
    return np.random.default_rng(seed).integers(0, COMMON["vocab_size"], size=(batch, SEQ))


# ---- the PyTorch pipeline ----------------------------------------------------------------------------

def hf_point(hf, name):
    """(module, "output" | "input") holding a gemmacpp hook point in the transformers model."""
    _, layer, *rest = name.split(".")
    block = hf.model.layers[int(layer)]
    point = ".".join(rest)
    return {"hook_resid_post": (block, "output"),
            "hook_mlp_out": (block.post_feedforward_layernorm, "output"),
            "attn.hook_z": (block.self_attn.o_proj, "input"),
            "ln2.hook_normalized": (block.pre_feedforward_layernorm, "output"),
            "hook_resid_mid": (block.pre_feedforward_layernorm, "input")}[point]


def on_point(hf, name, fn):
    """A PyTorch hook calling fn(tensor) at a gemmacpp point; fn returns a replacement or None."""
    module, where = hf_point(hf, name)
    if where == "input":
        def pre(mod, inputs):
            out = fn(inputs[0])
            return None if out is None else (out, *inputs[1:])
        return module.register_forward_pre_hook(pre)

    def post(mod, inputs, output):
        t = output[0] if isinstance(output, tuple) else output
        out = fn(t)
        if out is None:
            return None
        return (out, *output[1:]) if isinstance(output, tuple) else out
    return module.register_forward_hook(post)


class SaeLensRef:
    """The SAE as sae-lens computes it; call(x, edit) -> ({point: float64}, output tensor)."""

    def __init__(self, w, architecture, kind, apply_b):
        d_in, d_sae = w["W_enc"].shape
        cfg = {"architecture": SAELENS_ARCH[(architecture, kind)], "d_in": int(d_in),
               "d_sae": int(d_sae), "dtype": "float32", "device": "cpu",
               "apply_b_dec_to_input": apply_b, "normalize_activations": "none",
               "reshape_activations": "none", "metadata": {"sae_lens_version": "6.54.12"}}
        if kind != "sae":
            cfg["d_out"] = int(w["W_dec"].shape[1])
        if architecture == "topk":
            cfg["k"] = w["k"]
        self.sae = saelens_from_state(cfg, {n: w[n] for n in ("W_enc", "W_dec", "b_enc", "b_dec",
                                                                "threshold", "W_skip") if n in w})

    def __call__(self, x, edit=None):
        caps, handles = {}, []
        s = self.sae
        if edit is not None:
            handles.append(s.hook_sae_acts_post.register_forward_hook(lambda m, i, o: edit(o.clone())))
        for point in ("hook_sae_input", "hook_sae_acts_pre", "hook_sae_acts_post", "hook_sae_recons"):
            def keep(m, i, o, point=point):
                caps[point] = o.detach().double().numpy()
            handles.append(getattr(s, point).register_forward_hook(keep))
        try:
            with torch.no_grad():
                out = s(x.float())
        finally:
            for h in handles:
                h.remove()
        return caps, out


class Float64Ref:
    """The same from the float64 formulas (when sae-lens is not installed)."""

    def __init__(self, w, architecture, kind, apply_b):
        self.w, self.architecture, self.apply_b = w, architecture, apply_b

    def __call__(self, x, edit=None):
        xn = x.detach().double().numpy()
        pre, acts, recons, out = reference(self.w, xn, architecture=self.architecture,
                                           apply_b_dec_to_input=self.apply_b)
        if edit is not None:
            acts = edit(torch.from_numpy(acts)).numpy()
            recons = acts @ self.w["W_dec"].astype(np.float64) + self.w["b_dec"]
            out = recons + (xn @ self.w["W_skip"].astype(np.float64).T if "W_skip" in self.w else 0)
        caps = {"hook_sae_input": xn, "hook_sae_acts_pre": pre, "hook_sae_acts_post": acts,
                "hook_sae_recons": recons}
        return caps, torch.from_numpy(out).float()


def make_ref(w, architecture, kind, apply_b):
    try:
        import sae_lens  # noqa: F401
    except ImportError:
        return Float64Ref(w, architecture, kind, apply_b)
    return SaeLensRef(w, architecture, kind, apply_b)


def hf_run(hf, toks, sae, ref, *, splice=True, error_term=False, edit=None):
    """(logits, {point: float64}) of the transformers model with the SAE attached by PyTorch
    hooks: its input read at hook_in, its output replacing hook_out's activation (sae-lens'
    HookedSAETransformer semantics: output = recons (+ skip), + (activation - clean output))."""
    caps, state = {}, {}
    eps = hf.config.rms_norm_eps

    def sae_input(t):
        t = t.float().reshape(*t.shape[:2], -1)
        if sae.input_norm == "rms":
            t = t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + eps)
        return t

    def at_in(t):
        state["x"] = sae_input(t)

    def at_out(t):
        target = t.float().reshape(*t.shape[:2], -1)
        x = state.pop("x") if sae.hook_in != sae.hook_out else sae_input(t)
        c, out = ref(x, edit)
        caps.update(c)
        _, clean = ref(x) if edit is not None else (None, out)
        caps["hook_sae_error"] = (target - clean).double().numpy()
        if error_term:
            out = out + (target - clean)
        caps["hook_sae_output"] = out.double().numpy()
        return out.reshape(t.shape).to(t.dtype) if splice else None

    handles = []
    if sae.hook_in != sae.hook_out:
        handles.append(on_point(hf, sae.hook_in, at_in))
    handles.append(on_point(hf, sae.hook_out, at_out))
    try:
        with torch.no_grad():
            logits = hf(torch.from_numpy(toks)).logits.double().numpy()
    finally:
        for h in handles:
            h.remove()
    return logits, caps


def prepared_case(name, m, hf, toks, seed, *, spec=None):
    """The SAE of a case (gemmacpp's and the reference's, same weights), with JumpReLU thresholds
    moved clear of the reference's pre-activations and TopK checked for a gap at the k-th value, so
    that float rounding between the two models cannot switch a feature. spec: a CASES entry
    (default CASES[name]). The weights are sae.weights."""
    hook_in, hook_out, architecture, kind, extra = spec or CASES[name]
    c = m.config
    d_in = c["num_heads"] * c["head_dim"] if hook_in.endswith("hook_z") else c["hidden_size"]
    rng = np.random.default_rng(seed)
    w = random_weights(rng, d_in, D_SAE, d_in if kind == "sae" else c["hidden_size"],
                       architecture=architecture, kind=kind,
                       k=extra.get("k"))
    apply_b = extra.get("apply_b_dec_to_input", False)

    def build_sae():
        return gc.sae.SAE(w["W_enc"], w["W_dec"], w["b_enc"], w["b_dec"], threshold=w.get("threshold"),
                          k=w.get("k"), architecture=architecture, kind=kind, W_skip=w.get("W_skip"),
                          hook_in=hook_in, hook_out=hook_out, input_norm=extra.get("input_norm"),
                          apply_b_dec_to_input=apply_b, name=name)

    sae = build_sae()
    _, caps = hf_run(hf, toks, sae, Float64Ref(w, architecture, kind, apply_b), splice=False)
    pre = caps["hook_sae_acts_pre"]
    scale = np.max(np.abs(pre))
    if architecture == "jumprelu":
        thr = w["threshold"].astype(np.float64)
        cols = pre.reshape(-1, pre.shape[-1])
        for f in range(thr.shape[0]):
            while np.any(np.abs(cols[:, f] - thr[f]) < 1e-3 * scale):
                thr[f] += 3e-4 * scale
        w["threshold"] = thr.astype(np.float32)
        sae = build_sae()
    if architecture == "topk":  # the k in 3..12 with the widest gap at the k-th value
        rows = -np.sort(-pre.reshape(-1, pre.shape[-1]), axis=1)
        gaps = {k: np.min(rows[:, k - 1] - rows[:, k]) for k in range(3, 13)}
        w["k"] = max(gaps, key=gaps.get)
        assert gaps[w["k"]] > 1e-5 * scale
        sae = build_sae()
    sae.weights = w
    return sae, make_ref(w, architecture, kind, apply_b)


@pytest.mark.parametrize("case", list(CASES))
def test_feature_hooks_and_splice_match_pytorch_pipeline(pair, case):
    name, m, hf = pair
    toks = tokens(1)
    sae, ref = prepared_case(case, m, hf, toks, seed=len(case))
    ref_logits, ref_caps = hf_run(hf, toks, sae, ref, splice=True)
    with m.saes({sae.hook_in: sae}, splice=True):
        logits, cache = m.run_with_cache(toks, names=f"{sae.hook_out}.sae.*")
    assert list(cache) == [f"{sae.hook_out}.sae.{s}" for s in gc.sae.SUFFIXES]
    assert np.count_nonzero(cache[f"{sae.hook_out}.sae.hook_sae_acts_post"]) > 0
    for point, got in cache.items():
        err = rel_err(got, ref_caps[point.rsplit(".", 1)[1]])
        assert err <= TOL, f"{name} {case} {point}: {err:.3g}"
    err = rel_err(logits, ref_logits)
    print(f"{name} {case}: spliced logits rel err {err:.2e}")
    assert err <= TOL, f"{name} {case}: spliced logits {err:.3g}"
    assert rel_err(logits, m.forward(toks)) > 1e-3  # the splice changed the forward


@pytest.mark.parametrize("case", list(CASES))
def test_error_term_keeps_logits_bitwise(pair, case):
    name, m, hf = pair
    toks = tokens(2)
    sae, _ = prepared_case(case, m, hf, toks, seed=len(case))
    plain = m.forward(toks)
    plain_cache = m.run_with_cache(toks, names=sae.hook_out)[1][sae.hook_out]
    with m.saes([sae], error_term=True):
        np.testing.assert_array_equal(m.forward(toks), plain)
        logits, cache = m.run_with_cache(toks, names=f"{sae.hook_out}*")  # every SAE point
        np.testing.assert_array_equal(logits, plain)
        np.testing.assert_array_equal(cache[sae.hook_out], plain_cache)
        out = cache[f"{sae.hook_out}.sae.hook_sae_output"]
        np.testing.assert_array_equal(out.reshape(plain_cache.shape), plain_cache)
        # hooks that read without editing, on every point, still leave the logits bitwise
        with m.hooks({f"{sae.hook_out}.sae.*": lambda a, n: None}):
            np.testing.assert_array_equal(m.forward(toks), plain)
    # not by accident: a spliced forward without the error term does change the logits
    with m.saes([sae]):
        assert rel_err(m.forward(toks), plain) > 1e-3


@pytest.mark.parametrize("case", ["resid_post-jumprelu", "gs2-skip-transcoder"])
def test_feature_ablation_matches_pytorch_pipeline(pair, case):
    name, m, hf = pair
    toks = tokens(3)
    sae, ref = prepared_case(case, m, hf, toks, seed=len(case))
    with m.saes([sae], splice=False):
        acts = m.run_with_cache(toks, names="*.hook_sae_acts_post")[1]
    acts = next(iter(acts.values()))
    f = int(np.argmax(np.abs(acts).sum((0, 1))))  # the most active feature

    def ablate(a, n=None):
        a[..., f] = 0
        return a

    ref_logits, _ = hf_run(hf, toks, sae, ref, splice=True, error_term=True, edit=ablate)
    with m.saes([sae], error_term=True), m.hooks({f"{sae.hook_out}.sae.hook_sae_acts_post": ablate}):
        logits = m.forward(toks)
    err = rel_err(logits, ref_logits)
    assert err <= TOL, f"{name} {case}: ablated logits {err:.3g}"
    assert rel_err(logits, m.forward(toks)) > 1e-4  # the ablation did something
    # edits through hook_sae_acts_pre go through the activation function: a very negative
    # pre-activation switches the feature off exactly as zeroing it does
    def off(p, n):
        p[..., f] = -1e9
    with m.saes([sae], error_term=True), m.hooks({f"{sae.hook_out}.sae.hook_sae_acts_pre": off}):
        np.testing.assert_array_equal(m.forward(toks), logits)


def test_splice_with_kv_cache_and_ragged_batch(pair):
    name, m, hf = pair
    toks = tokens(4)
    sae, _ = prepared_case("resid_post-jumprelu", m, hf, toks, seed=3)
    with m.saes([sae]):
        full = m.forward(toks)
        cache = m.new_cache(batch=2, max_len=64)
        m.forward(toks[:, :-1], cache=cache)
        last = m.forward(toks[:, -1:], cache=cache)
        assert rel_err(last[:, 0], full[:, -1]) <= TOL
        ragged = m.forward([toks[0].tolist(), toks[1, :9].tolist()])
        assert rel_err(ragged[1, :9], full[1, :9]) <= TOL and np.all(ragged[1, 9:] == 0)


def test_bad_attachments_raise_named_errors(pair):
    name, m, hf = pair
    rng = np.random.default_rng(0)
    w = random_weights(rng, 40, 30)
    wrong = gc.sae.SAE(w["W_enc"], w["W_dec"], threshold=w["threshold"],
                       hook_in="blocks.0.hook_resid_post", name="wide")
    with pytest.raises(ValueError, match=r"wide reads 40 values per token \(d_in\) but "
                                         r"'blocks.0.hook_resid_post' of this model has 32"):
        m.saes([wrong])
    w = random_weights(rng, 32, 30)
    sae = gc.sae.SAE(w["W_enc"], w["W_dec"], threshold=w["threshold"], hook_in="blocks.9.hook_resid_post")
    with pytest.raises(ValueError, match="no hook point"):
        m.saes([sae])
    with pytest.raises(ValueError, match="reads 'blocks.9.hook_resid_post', not 'blocks.0.hook_resid_post'"):
        m.saes({"blocks.0.hook_resid_post": sae})
    backwards = sae.at("blocks.1.hook_resid_post", "blocks.0.hook_mlp_out")
    with pytest.raises(ValueError, match="reaches after"):
        m.saes([backwards])
    ok = sae.at("blocks.0.hook_resid_post")
    with pytest.raises(ValueError, match="two SAEs write"):
        m.saes([ok, ok.at("blocks.0.hook_resid_post")])
    with m.saes([ok]):
        with pytest.raises(ValueError, match="two SAEs write"):
            m.saes([ok])
    bare = gc.sae.SAE(w["W_enc"], w["W_dec"], threshold=w["threshold"])
    with pytest.raises(ValueError, match="does not know its hook point"):
        m.saes([bare])
    with m.saes({"blocks.0.hook_resid_post": bare}):  # a dict key gives it one
        assert "blocks.0.hook_resid_post.sae.hook_sae_acts_post" in m.hook_names()
    assert not any(".sae." in n for n in m.hook_names())  # detached on exit
    with pytest.raises(ValueError, match="no hook point matches"):
        m.hooks({"blocks.0.hook_resid_post.sae.hook_sae_acts_post": lambda a, n: None})


def test_sae_files_that_do_not_fit_the_model_raise_named_errors(pair, tmp_path):
    """Files that load fine but were made for another model: their d_in / d_out against the
    width of the model's hook point (attn.hook_z flattened: heads x head_dim), a layer the model
    lacks, and the same mismatches through the feature functions."""
    name, m, hf = pair
    rng = np.random.default_rng(3)
    c = m.config
    z = c["num_heads"] * c["head_dim"]
    d = c["hidden_size"]
    cases = [  # (folder, hf_in, hf_out, d_in, d_out, message)
        ("resid", "model.layers.1.output", None, d + 8, d + 8,
         rf"reads {d + 8} values per token \(d_in\) but 'blocks.1.hook_resid_post' of this model has {d}"),
        ("attn_out", "model.layers.0.self_attn.o_proj.input", None, z - 4, z - 4,
         rf"reads {z - 4} values per token \(d_in\) but 'blocks.0.attn.hook_z' of this model has {z}"),
        ("transcoder", "model.layers.1.pre_feedforward_layernorm.output",
         "model.layers.1.post_feedforward_layernorm.output", d, d + 3,
         rf"writes {d + 3} values per token \(d_out\) but 'blocks.1.hook_mlp_out' of this model has {d}"),
        ("late", "model.layers.9.output", None, d, d, "'blocks.9.hook_resid_post', which this model has no hook point"),
    ]
    for folder, hf_in, hf_out, d_in, d_out, message in cases:
        w = random_weights(rng, d_in, 24, d_out, kind="sae" if hf_out is None else "transcoder")
        sae = gc.sae.load(write_gemma_scope_2(tmp_path / folder, w, hf_in=hf_in, hf_out=hf_out))
        with pytest.raises(ValueError, match=message):
            m.saes([sae])
    wide = gc.sae.load(tmp_path / "resid")
    toks = tokens(5, batch=1)
    with pytest.raises(ValueError, match=rf"the input has {d} values per token, but the SAE reads d_in = {d + 8}"):
        gc.sae.feature_activations(m, wide, toks)
    with pytest.raises(ValueError, match=rf"decoder rows have {d + 8} values but 'blocks.1.hook_resid_post' has {d}"):
        gc.sae.steer(m, wide, 0)
    # one bad SAE among good ones
    good = gc.sae.SAE(*(random_weights(rng, d, 24)[k] for k in ("W_enc", "W_dec", "b_enc", "b_dec")),
                      threshold=np.zeros(24, np.float32), hook_in="blocks.0.hook_resid_post")
    with pytest.raises(ValueError, match="d_in"):
        m.saes([good, wide])


GS2_FILES = {  # Gemma Scope 2 folder -> (hf_hook_point_in, hf_hook_point_out, CASES-style spec)
    "attn_out/layer_0_width_16k_l0_small": (
        "model.layers.0.self_attn.o_proj.input", None,
        ("blocks.0.attn.hook_z", None, "jumprelu", "sae", {})),
    "transcoder/layer_1_width_16k_l0_small_affine": (
        "model.layers.1.pre_feedforward_layernorm.output",
        "model.layers.1.post_feedforward_layernorm.output",
        ("blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out", "jumprelu", "skip_transcoder", {})),
}


@pytest.mark.parametrize("folder", list(GS2_FILES))
def test_gemma_scope_2_files_spliced_match_saelens_pipeline(pair, tmp_path, monkeypatch, folder):
    """From the file to the logits: a Gemma Scope 2 attn_out SAE (o_proj's input, attn.hook_z
    flattened) and a skip transcoder, written as Gemma Scope 2 folders, loaded by gc.sae.load and
    spliced, against the same folders loaded by sae-lens' own Gemma Scope 2 loader and attached to
    the transformers model at the Hugging Face module points the config names."""
    name, m, hf = pair
    hf_in, hf_out, spec = GS2_FILES[folder]
    toks = tokens(6)
    made, _ = prepared_case(folder, m, hf, toks, seed=11, spec=spec)
    write_gemma_scope_2(tmp_path / folder, made.weights, hf_in=hf_in, hf_out=hf_out)
    sae = gc.sae.load(tmp_path / folder)
    assert (sae.hook_in, sae.hook_out, sae.kind) == (spec[0], spec[1] or spec[0], spec[3])
    loaders = redirect_hub(monkeypatch, str(tmp_path))
    cfg, state, _ = loaders.gemma_3_sae_huggingface_loader("google/gemma-scope-2-270m-pt", folder)
    ref = SaeLensRef.__new__(SaeLensRef)
    ref.sae = saelens_from_state(cfg, state)
    ref_logits, ref_caps = hf_run(hf, toks, sae, ref, splice=True)
    with m.saes([sae]):
        logits, cache = m.run_with_cache(toks, names=f"{sae.hook_out}.sae.*")
    assert np.count_nonzero(cache[f"{sae.hook_out}.sae.hook_sae_acts_post"]) > 0
    for point, got in cache.items():
        err = rel_err(got, ref_caps[point.rsplit(".", 1)[1]])
        assert err <= TOL, f"{name} {folder} {point}: {err:.3g}"
    err = rel_err(logits, ref_logits)
    assert err <= TOL, f"{name} {folder}: spliced logits {err:.3g}"
    assert rel_err(logits, m.forward(toks)) > 1e-3  # the splice changed the forward
