"""A bare SigLIP vision tower (a SiglipVisionModel checkpoint, as gemmacpp.load returns it):
encode_image gives the tower's last hidden state, and its hook points can be read and edited.

The towers inside Gemma 3 and PaliGemma are not VisionModels: they are part of the text Model,
through ImageInputs (image_inputs.py).
"""
from __future__ import annotations

import numpy as np

from .. import checkpoint
from ..hooks import HookedMixin
from .preprocess import pixels_from


class VisionModel(HookedMixin):
    """A bare SigLIP vision tower (a SiglipVisionModel checkpoint); see gemmacpp.load."""

    def __init__(self, core_vision, path: str):
        self._v = core_vision
        self._config = None
        self._settings = checkpoint.processor_settings(path, "siglip_vision_model",
                                                     self.config["image_size"])

    @property
    def config(self) -> dict:
        if self._config is None:
            self._config = self._v.config()
        return self._config

    @property
    def path(self) -> str:
        return self._v.path

    def encode_image(self, images, *, preprocess: bool = True) -> np.ndarray:
        """The last hidden state [N, P, d] float32 (after the post-LayerNorm) of PIL images /
        uint8 HWC arrays, or with preprocess=False of float pixels [N, 3, S, S] in [-1, 1]."""
        settings = dict(self._settings)
        size = settings.pop("size")
        pixels = pixels_from(images, size=size, channels=self.config["num_channels"],
                             preprocess_images=preprocess, **settings)
        return self._v.encode(pixels, hooks=self._hook_dispatch())

    # ---- hooks (docs/hooks.md): the tower's points only (hooks() from HookedMixin) ----

    def hook_names(self) -> list[str]:
        """vision.blocks.{i}.hook_resid_post for each encoder layer, then vision.hook_out."""
        return list(self._v.hook_names())

    def run_with_cache(self, images, *, names=None, preprocess: bool = True):
        """(last hidden state, activations): encode_image(images) that also records the selected
        hook points (None: all) as an ActivationCache, after any active hooks edited them."""
        with self._recording(names) as acts:
            out = self.encode_image(images, preprocess=preprocess)
        return out, acts

    def forward(self, *args, **kwargs):
        raise TypeError("a SigLIP vision tower has no text forward; use encode_image(images)")

    def __repr__(self) -> str:
        c = self.config
        return (f"<gemmacpp.VisionModel siglip {c['num_layers']} layers, d={c['hidden_size']}, "
                f"{c['image_size']}px / {c['patch_size']}: {self.path!r}>")
