"""Sparse autoencoders and transcoders (Gemma Scope 1 and 2, SAELens) in gemmacpp's forward.

    sae = gc.sae.load("gemma-scope-2-270m-pt/resid_post/layer_9_width_16k_l0_small")
    acts = sae.encode(x)                                   # SparseActs (or dense=True)
    with model.saes({sae.hook_in: sae}, error_term=True):  # features as hook points
        logits, cache = model.run_with_cache(tokens, names="*.hook_sae_acts_post")

Files: formats.py (loading, saving, hook names), autoencoder.py (the SAE object), splice.py
(attaching to a model), features.py (top activations, steering, attribution), harvest.py
(activations to sharded safetensors for training). docs/sae.md is the guide.
"""
from .autoencoder import SAE
from .formats import (hook_from_hf, hook_from_transformer_lens, hook_to_hf, load,
                      save_gemma_scope_2)
from .features import attribute, feature_activations, logit_diff, steer, top_activating
from .harvest import harvest, read_manifest, shards, to_saelens
from .splice import SUFFIXES

__all__ = ["SAE", "load", "save_gemma_scope_2", "hook_from_hf", "hook_to_hf",
           "hook_from_transformer_lens", "SUFFIXES", "feature_activations", "top_activating",
           "steer", "attribute", "logit_diff", "harvest", "read_manifest", "shards", "to_saelens"]
