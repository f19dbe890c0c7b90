"""Reading and editing activations of a model's forward pass (see docs/hooks.md).

    logits, cache = model.run_with_cache(tokens, names="blocks.*.hook_resid_post")
    cache["blocks.3.hook_resid_post"]                 # float32 [B, T, d]

    def ablate_head_2(z, name):                       # z [B, T, H, D], the activation
        z[:, :, 2] = 0                                # edit in place, or return a replacement
    with model.hooks({"blocks.5.attn.hook_z": ablate_head_2}):
        logits = model.forward(tokens)

Names follow TransformerLens (model.hook_names() lists them in forward order). Wherever names are
selected, a name may be exact, a glob ("blocks.*.attn.hook_pattern", fnmatch rules) or a
predicate (a callable taking a name and returning a bool); run_with_cache also takes a list.

A hook is called as fn(activation, hook) (hook: the point's name, a str with TransformerLens'
hook.name and hook.layer(), so fn(activation, name) code works too) with a float32 NumPy array
that owns a copy of the activation, copied back into the forward after the call: in-place edits
change the forward, and a returned array (same shape, float32) replaces the activation. Its
buffer is reused by the next hook call; keep `activation.copy()` to use it later (a hook that
keeps the array itself gets a ValueError). Hooks that are not registered cost nothing.

HookedMixin gives a model class (Model, VisionModel) hooks() and the recording behind
run_with_cache; the HookDispatch it builds from its HookRegistry is what the C++ forward calls.
"""
from __future__ import annotations

import contextlib
import fnmatch
import threading
import traceback

import numpy as np

from .lens import CacheAnalysis, hook_point

__all__ = ["ActivationCache", "HookedMixin", "select_names"]

_REGISTRY_LOCK = threading.Lock()


def select_names(all_names, names) -> list[str]:
    """The names of all_names (in their order) selected by `names`: None (all), an exact name or a
    glob, a predicate, or a list/tuple of those. ValueError when a string selects nothing."""
    if names is None:
        return list(all_names)
    if callable(names):
        return [n for n in all_names if names(n)]
    if not isinstance(names, (str, list, tuple)):
        raise TypeError(f"hook names: expected a name, a glob, a predicate or a list of them, got "
                        f"{type(names).__name__} {names!r}")
    specs = [names] if isinstance(names, str) else list(names)
    known = set(all_names)
    chosen = set()
    for spec in specs:
        if callable(spec):
            chosen.update(n for n in all_names if spec(n))
            continue
        if not isinstance(spec, str):
            raise TypeError(f"hook names: expected a name, a glob or a predicate, got {spec!r}")
        if spec in known:  # the common case, without a scan
            chosen.add(spec)
            continue
        hits = [n for n in all_names if fnmatch.fnmatchcase(n, spec)]
        if not hits:
            raise ValueError(f"no hook point matches {spec!r} (see model.hook_names())")
        chosen.update(hits)
    return [n for n in all_names if n in chosen]


class ActivationCache(CacheAnalysis, dict):
    """Activations by hook name (float32 NumPy arrays, in forward order), as run_with_cache
    returns them: a dict with a helper to stack a family of names, and TransformerLens'
    shorthand and methods (cache["resid_post", 3], accumulated_resid, ...: gemmacpp.lens)."""

    def stack(self, names) -> np.ndarray:
        """The cached activations selected by `names` (a glob, a list or a predicate), stacked
        along a new first axis in forward order: e.g. stack("blocks.*.hook_resid_post") is
        [n_layers, B, T, d]."""
        return np.stack([self[n] for n in select_names(list(self), names)])


def check_replacement(name: str, activation: np.ndarray, replacement) -> np.ndarray:
    """The replacement a hook returned as an array of the activation's shape and dtype."""
    if not isinstance(replacement, np.ndarray):
        try:
            replacement = np.asarray(replacement)
        except Exception as e:
            raise TypeError(f"the hook on {name!r} returned {type(replacement).__name__}, which is "
                            "not an array (return None after editing in place, or an array)") from e
    if replacement.dtype != activation.dtype:
        raise TypeError(f"the hook on {name!r} returned an array of {replacement.dtype}; the "
                        f"activation is {activation.dtype}, shape {activation.shape}")
    if replacement.shape != activation.shape:
        raise ValueError(f"the hook on {name!r} returned an array of shape {replacement.shape}; "
                         f"the activation has shape {activation.shape}")
    return replacement


class HookDispatch:
    """What the C++ forward calls: .names lists the hook points to offer, and dispatch(name,
    activation) runs that point's hooks in registration order, each seeing the previous ones'
    edits, and writes a returned replacement into the forward's buffer.

    Stages (attached SAEs, gemmacpp.sae.splice) run at their host points before the hooks
    registered there; they offer points of their own (stage.names, which the C++ forward does not
    know) through offer()."""

    def __init__(self, all_names, registrations, stages=()):
        self._all = list(all_names)
        self._fns: dict[str, list] = {}
        for names, fn in registrations:
            for n in select_names(self._all, names):
                self._fns.setdefault(n, []).append(fn)
        self._stages: dict[str, list] = {}
        virtual = set()
        for stage in stages:
            virtual.update(stage.names)
            for host in stage.hosts:
                self._stages.setdefault(host, []).append(stage)
        self.names = [n for n in self._all
                      if n not in virtual and (n in self._fns or n in self._stages)]

    def __call__(self, name, activation):
        try:
            self._run(name, activation)
        except BaseException as e:
            error = e
        else:
            return
        # The activation's buffer is reused by later hook calls: drop it from the frames the
        # traceback keeps (their lines stay printable), so that what a debugger reads later is not
        # another point's values.
        del activation
        seen, err = set(), error
        while err is not None and id(err) not in seen:
            seen.add(id(err))
            traceback.clear_frames(err.__traceback__)
            err = err.__cause__ or err.__context__
        raise error

    def hooked(self, name) -> bool:
        """Whether any hook is registered on `name`."""
        return name in self._fns

    def offer(self, name, array):
        """Runs the hooks of a stage's own point on `array` (which the stage owns) and returns it,
        edited in place or overwritten by a hook's replacement."""
        for fn in self._fns.get(name, ()):
            out = fn(array, hook_point(name))  # a str with TransformerLens' hook.name
            if out is not None and out is not array:
                array[...] = check_replacement(name, array, out)
        return array

    def _run(self, name, activation):
        for stage in self._stages.get(name, ()):
            stage.run(self, name, activation)
        self.offer(name, activation)


class HookRegistry:
    """A model's active hooks: (names, fn) registrations in order, pushed and popped by the
    model.hooks() context manager and run_with_cache; and its stages (attached SAEs), pushed and
    popped by model.saes(). Both are per thread: a context entered in one thread applies to that
    thread's forwards only, and run_with_cache in two threads records each its own."""

    def __init__(self):
        self._local = threading.local()

    def _lists(self):
        local = self._local
        if not hasattr(local, "registrations"):
            local.registrations, local.stages = [], []
        return local

    @property
    def registrations(self) -> list:
        return self._lists().registrations

    @property
    def stages(self) -> list:
        return self._lists().stages

    @contextlib.contextmanager
    def added(self, registrations):
        start = len(self.registrations)
        self.registrations.extend(registrations)
        try:
            yield
        finally:
            del self.registrations[start:]

    @contextlib.contextmanager
    def added_stages(self, stages):
        start = len(self.stages)
        self.stages.extend(stages)
        try:
            yield
        finally:
            del self.stages[start:]

    def dispatch(self, all_names):
        if not self.registrations and not self.stages:
            return None
        return HookDispatch(all_names, self.registrations, self.stages)


def registrations_from(hooks) -> list:
    """[(names, fn)] from a {name | glob | predicate: fn or [fn, ...]} mapping (or pairs)."""
    items = hooks.items() if isinstance(hooks, dict) else hooks
    out = []
    for names, fns in items:
        for fn in (fns if isinstance(fns, (list, tuple)) else [fns]):
            if not callable(fn):
                raise TypeError(f"hooks[{names!r}]: expected a callable fn(activation, name), got {fn!r}")
            out.append((names, fn))
    return out


class HookedMixin:
    """Hooks for a model class (the text Model, the SigLIP VisionModel): hooks(), the recording
    behind run_with_cache, and the dispatch its forward hands the C++ model. The class defines
    hook_names() (every point, in the order its forward reaches them) and its own run_with_cache
    (whose inputs differ: tokens, or images) around _recording."""

    _hook_registry = None  # a HookRegistry once hooks() or run_with_cache is first used

    def hooks(self, hooks):
        """Context manager: while active, every forward (also inside generate, and encode_image
        for the vision tower's points) calls fn(activation, name) at the selected hook points.
        hooks: {name | glob | predicate: fn or [fn, ...]}. fn gets a float32 NumPy copy of the
        activation (text points [B, T, ...], attention scores and patterns [B, H, T, Tk], vision
        points [N, P, d]), copied back after the call, that it may edit in place, or returns a
        replacement of the same shape and dtype (None: keep the activation). Contexts nest; hooks
        on one point run in registration order, each seeing the previous ones' edits."""
        regs = registrations_from(hooks)
        names = self.hook_names()
        for spec, _ in regs:
            select_names(names, spec)  # unknown names fail here, not at the first forward
        return self._hooks().added(regs)

    @contextlib.contextmanager
    def _recording(self, names):
        """Context giving an ActivationCache that fills, while it is open, with copies of the
        activations at the points selected by `names` (None: all), taken after any active hooks
        have edited them (the recorder is registered last)."""
        acts = ActivationCache()

        def record(activation, name):
            acts[str(name)] = activation.copy()

        chosen = select_names(self.hook_names(), names)
        with self._hooks().added([(chosen, record)] if chosen else []):
            yield acts

    def _hooks(self) -> HookRegistry:
        if self._hook_registry is None:
            with _REGISTRY_LOCK:  # two threads' first use must not make two registries
                if self._hook_registry is None:
                    self._hook_registry = HookRegistry()
        return self._hook_registry

    def _hook_dispatch(self):
        """What a forward hands the C++ model: None (no hooks, no cost) or a HookDispatch."""
        reg = self._hook_registry
        if reg is None or (not reg.registrations and not reg.stages):
            return None
        return reg.dispatch(self.hook_names())

    def _with_stage_names(self, names: list) -> list:
        """names with the points of attached stages (SAEs) inserted after the point each stage
        offers them at."""
        reg = self._hook_registry
        if reg is None or not reg.stages:
            return names
        out = []
        for n in names:
            out.append(n)
            for stage in reg.stages:
                out.extend(stage.names_after(n))
        return out
