"""SAEs in the forward: model.saes({hook: sae}, splice=..., error_term=...) attaches SAEs and
transcoders at hook points, each offering its own points under "<hook_out>.sae.":

    hook_sae_input      [B, T, d_in]   what the SAE reads (a copy: editing it changes only the SAE)
    hook_sae_acts_pre   [B, T, d_sae]  pre-activations (edits go through the activation function)
    hook_sae_acts_post  [B, T, d_sae]  feature activations (edit to ablate or steer features)
    hook_sae_recons     [B, T, d_out]  acts @ W_dec + b_dec (a skip transcoder's skip term is added after)
    hook_sae_error      [B, T, d_out]  the activation minus the clean output (of unedited features)
    hook_sae_output     [B, T, d_out]  what replaces the activation at hook_out when splicing

With splice=True the activation at hook_out becomes the SAE's output: its reconstruction, or with
error_term=True the reconstruction plus the error term, computed as
activation + (output - clean output) + (error - clean error), which is the activation itself, bit
for bit, wherever no hook changed the SAE's points. splice=False only reads (the forward is
unchanged whatever the SAE's hooks do). Hooks on hook_out itself see the spliced activation.
An SAE is computed at hook_out (a transcoder keeps a copy of its input from hook_in until then).
"""
from __future__ import annotations

import numpy as np

from .. import ops
from .autoencoder import SAE

SUFFIXES = ("hook_sae_input", "hook_sae_acts_pre", "hook_sae_acts_post", "hook_sae_recons",
            "hook_sae_error", "hook_sae_output")


def hook_width(config: dict, name: str):
    """The number of values per token a text hook point holds (attention heads flattened), or
    None when the name is not one whose size the config gives."""
    parts = name.split(".")
    if name in ("hook_embed", "ln_final.hook_normalized"):
        return config["hidden_size"]
    if len(parts) < 3 or parts[0] != "blocks" or not parts[1].isdigit():
        return None
    layer = config["layers"][int(parts[1])] if int(parts[1]) < len(config["layers"]) else {}
    point = ".".join(parts[2:])
    head_dim = layer.get("head_dim", config.get("head_dim"))
    if point in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out",
                 "hook_mlp_out", "ln1.hook_normalized", "ln2.hook_normalized"):
        return config["hidden_size"]
    if point in ("attn.hook_q", "attn.hook_q_normed", "attn.hook_z"):
        return config["num_heads"] * head_dim
    if point in ("attn.hook_k", "attn.hook_k_normed", "attn.hook_v"):
        return layer.get("num_kv_heads", config.get("num_kv_heads")) * head_dim
    if point in ("mlp.hook_pre", "mlp.hook_pre_linear", "mlp.hook_post"):
        return config["intermediate_size"]
    return None


class SaeSplice:
    """One attached SAE: a stage of the model's HookDispatch (hooks.py) at its hook points."""

    def __init__(self, sae: SAE, splice: bool, error_term: bool, eps: float):
        self.sae, self.splice, self.error_term, self.eps = sae, bool(splice), bool(error_term), eps
        self.hook_in, self.hook_out = sae.hook_in, sae.hook_out
        self.names = [f"{self.hook_out}.sae.{s}" for s in SUFFIXES]
        self.hosts = [self.hook_in] if self.hook_in == self.hook_out else [self.hook_in, self.hook_out]
        self._captured = None

    def names_after(self, name):
        return self.names if name == self.hook_out else ()

    def _forward(self, x):
        out = self.sae.decode(self.sae.encode(x))
        return out + self.sae.skip(x) if self.sae.W_skip is not None else out

    def run(self, d, name, act):
        if name != self.hook_out:  # a transcoder's input
            self._captured = self.sae.input_from(act, self.eps)
            return
        if self.hook_in == self.hook_out:
            x0 = self.sae.input_from(act, self.eps)
        else:
            x0, self._captured = self._captured, None
            if x0 is None or x0.shape[:2] != act.shape[:2]:
                raise RuntimeError(f"{self.sae.name}: reached {self.hook_out} without the input "
                                   f"from {self.hook_in} of the same forward")
        I, P, A, R, E, O = self.names
        if (self.error_term or not self.splice) and not any(d.hooked(n) for n in self.names):
            return  # nothing reads or edits the SAE, and the activation stays what it is
        sae = self.sae
        x = d.offer(I, x0.copy()) if d.hooked(I) else x0
        if d.hooked(P):
            acts, pre = sae.encode(x, dense=True, return_pre=True)
            before = pre.copy()
            d.offer(P, pre)
            if not np.array_equal(pre, before, equal_nan=True):
                acts = sae.activate(pre)
        else:
            acts = sae.encode(x, dense=d.hooked(A))
        if d.hooked(A):
            acts = d.offer(A, acts)
        recons = sae.decode(acts)
        if d.hooked(R):
            recons = d.offer(R, recons)
        out = recons + sae.skip(x) if sae.W_skip is not None else recons
        target = act.reshape(act.shape[0], act.shape[1], -1)  # a view of the activation
        if target.shape[-1] != sae.d_out:
            raise ValueError(f"{sae.name} writes {sae.d_out} values per token (d_out) but "
                             f"{self.hook_out!r} has {target.shape[-1]}")
        final = out
        if self.error_term or d.hooked(E):
            edited = any(d.hooked(n) for n in (I, P, A, R))
            clean = self._forward(x0) if edited else out
            err_clean = target - clean
            err = d.offer(E, err_clean.copy()) if d.hooked(E) else err_clean
            if self.error_term:
                delta = (out - clean) + (err - err_clean)
                final = np.where(delta == 0, target, target + delta)
        if d.hooked(O):
            final = d.offer(O, final)
        if self.splice:
            target[...] = final


def _as_pairs(saes):
    if isinstance(saes, SAE):
        return [(saes.hook_in, saes)]
    if isinstance(saes, dict):
        pairs = []
        for hook, sae in saes.items():
            if not isinstance(sae, SAE):
                raise TypeError(f"saes[{hook!r}]: expected a gemmacpp.sae.SAE, got {type(sae).__name__}")
            if sae.hook_in is None:
                sae = sae.at(hook)
            elif sae.hook_in != hook:
                raise ValueError(f"{sae.name} reads {sae.hook_in!r}, not {hook!r}: attach it at "
                                 f"{sae.hook_in!r}, or use sae.at({hook!r}) to read another point")
            pairs.append((hook, sae))
        return pairs
    pairs = []
    for sae in saes:
        if not isinstance(sae, SAE):
            raise TypeError(f"saes: expected gemmacpp.sae.SAE objects, got {type(sae).__name__}")
        pairs.append((sae.hook_in, sae))
    return pairs


def attach(model, saes, *, splice: bool = True, error_term: bool = False):
    """The context manager behind model.saes(): checks every SAE against the model (hook points
    exist, in forward order, sizes match) before anything is attached."""
    names = model.hook_names()
    position = {n: i for i, n in enumerate(names)}
    config = model.config
    reg = model._hooks()
    taken = {s.hook_out for s in reg.stages}
    stages = []
    for hook, sae in _as_pairs(saes):
        if hook is None:
            raise ValueError(f"{sae.name} does not know its hook point: attach it as "
                             "model.saes({hook_name: sae})")
        for role, point in (("reads", sae.hook_in), ("writes", sae.hook_out)):
            if point not in position:
                raise ValueError(f"{sae.name} {role} {point!r}, which this model has no hook point "
                                 "for (see model.hook_names())")
        if position[sae.hook_in] > position[sae.hook_out]:
            raise ValueError(f"{sae.name} reads {sae.hook_in!r}, which the forward reaches after "
                             f"{sae.hook_out!r}, where it writes")
        for role, point, size, dim in (("reads", sae.hook_in, sae.d_in, "d_in"),
                                       ("writes", sae.hook_out, sae.d_out, "d_out")):
            width = hook_width(config, point)
            if width is not None and width != size:
                raise ValueError(f"{sae.name} {role} {size} values per token ({dim}) but "
                                 f"{point!r} of this model has {width}")
        if sae.hook_out in taken:
            raise ValueError(f"two SAEs write {sae.hook_out!r}; attach one at a time")
        taken.add(sae.hook_out)
        stages.append(SaeSplice(sae, splice, error_term, float(config.get("norm_eps", 1e-6))))
    return reg.added_stages(stages)
