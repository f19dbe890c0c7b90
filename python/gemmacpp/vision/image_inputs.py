"""The image side of Gemma 3 and PaliGemma checkpoints (ImageInputs, used by Model.forward /
generate / encode_image): the tower and projector that make soft tokens, the layout of image
tokens in a prompt, and the bidirectional spans of the forward.

Token layouts (as transformers' processors build them):
  Gemma 3:   each image is "\\n\\n<start_of_image>" + mm_tokens_per_image x <image_soft_token> +
             "<end_of_image>\\n\\n"; a prompt marks an image's place with <start_of_image>. The soft
             tokens of one image attend to each other bidirectionally (inside the sliding window on
             local layers); everything else is causal.
  PaliGemma: image tokens first (one per patch), then BOS + prompt + "\\n"; the whole input of a
             call with images is the prefix, attended bidirectionally; later tokens are causal.
             Positions count from 1.
Soft tokens replace the embeddings of the image tokens and are not scaled by sqrt(d).

Hooks: the tower offers vision.blocks.{i}.hook_resid_post and vision.hook_out ([N, P, d]); they
come first in a model's hook_names() (images are encoded before the text forward runs).
"""
from __future__ import annotations

import numpy as np

from .. import checkpoint
from .preprocess import pixels_from, preprocess_pan_and_scan


def is_vision_hook(name: str) -> bool:
    return name.startswith("vision.")


class _HookSubset:
    """The part of a HookDispatch that one C++ hook set takes: the tower gets the vision names,
    the text forward the others (each refuses names it has no point for)."""

    def __init__(self, dispatch, names):
        self._dispatch, self.names = dispatch, names

    def __call__(self, name, activation):
        return self._dispatch(name, activation)


def split_hooks(dispatch):
    """(vision hooks, text hooks) of a HookDispatch (or None): each None when it selects no point
    there, so the side without hooks runs its plain path."""
    if dispatch is None:
        return None, None
    vision = [n for n in dispatch.names if is_vision_hook(n)]
    if not vision:
        return None, dispatch
    text = [n for n in dispatch.names if not is_vision_hook(n)]
    return _HookSubset(dispatch, vision), (_HookSubset(dispatch, text) if text else None)


class ImageInputs:
    """The image side of a Gemma 3 / PaliGemma checkpoint: tower, projector, token ids, layout."""

    def __init__(self, cfg: dict, path: str, core_vision, core_projector):
        self.kind = cfg["model_type"]
        self.vision = core_vision
        self.projector = core_projector
        vc = core_vision.config()
        self.image_size, self.channels = vc["image_size"], vc["num_channels"]
        self.tokens_per_image = int(core_projector.tokens)
        self.image_token_id = int(cfg.get("image_token_index", cfg.get("image_token_id",
                                          262144 if self.kind == "gemma3" else 256000)))
        self.boi_id = int(cfg.get("boi_token_index", 255999)) if self.kind == "gemma3" else None
        self.eoi_id = int(cfg.get("eoi_token_index", 256000)) if self.kind == "gemma3" else None
        self.position_offset = 1 if self.kind == "paligemma" else 0
        self.settings = checkpoint.processor_settings(path, self.kind, self.image_size)
        self.pan_and_scan_settings = checkpoint.pan_and_scan_settings(path)

    def soft_tokens(self, images, preprocess: bool = True, hooks=None) -> np.ndarray:
        """Projected soft tokens [N, tokens_per_image, d] float32; hooks: the tower's (see
        split_hooks), which see and may edit its activations before the projector."""
        settings = dict(self.settings)
        size = settings.pop("size")
        pixels = pixels_from(images, size=size, channels=self.channels,
                             preprocess_images=preprocess, **settings)
        return self.projector.project(self.vision.encode(pixels, hooks=hooks))

    def forward_inputs(self, tokens: np.ndarray, lengths, images, preprocess: bool = True,
                       hooks=None) -> dict:
        """Keyword arguments of the core forward for tokens [B, T] holding image tokens: embeds,
        embed_mask, spans, span_in_window. Images fill the runs of image tokens in order (row by
        row); each image needs exactly tokens_per_image of them. hooks: the tower's."""
        B, T = tokens.shape
        real = np.ones((B, T), bool) if lengths is None else \
            np.arange(T)[None, :] < np.asarray(lengths)[:, None]
        mask = (tokens == self.image_token_id) & real
        n_tokens = int(mask.sum())
        if isinstance(images, np.ndarray) and images.dtype.kind == "f":
            preprocess = False  # float pixels [N, 3, S, S], already preprocessed
        soft = self.soft_tokens(images, preprocess, hooks)
        n = soft.shape[0]
        if n_tokens != n * self.tokens_per_image:
            raise ValueError(f"images: {n} image(s) need {n * self.tokens_per_image} image tokens "
                             f"(id {self.image_token_id}, {self.tokens_per_image} per image), the "
                             f"tokens hold {n_tokens}")
        d = soft.shape[-1]
        embeds = np.zeros((B, T, d), np.float32)
        embeds[mask] = soft.reshape(-1, d)  # row-major: images in order of appearance
        spans = []
        for b in range(B):
            row_len = int(real[b].sum())
            if self.kind == "paligemma":
                if mask[b].any():
                    spans.append((b, 0, row_len))  # image + prefix: bidirectional
                continue
            t = 0
            while t < row_len:  # each run of image tokens is one image's block
                if mask[b, t]:
                    e = t
                    while e < row_len and mask[b, e]:
                        e += 1
                    spans.append((b, t, e))
                    t = e
                else:
                    t += 1
        return dict(embeds=embeds, embed_mask=mask.astype(np.uint8),
                    spans=np.asarray(spans, np.int64).reshape(-1, 3),
                    span_in_window=self.kind == "gemma3")

    def pan_and_scan(self, images):
        """(float pixels of each image followed by its crops, crops per image): Gemma 3's
        pan-and-scan with the checkpoint's processor settings (defaults 256 px, 4 crops, 1.2)."""
        if self.kind != "gemma3":
            raise ValueError("pan_and_scan: only Gemma 3 uses pan-and-scan")
        s = dict(self.settings)
        size = s.pop("size")
        pas = {k: self.pan_and_scan_settings[k] for k in self.pan_and_scan_settings}
        return preprocess_pan_and_scan(images, size=size, **pas, **s)

    def expand_prompt(self, prompt, n_images: int, tokenizer=None, num_crops=None) -> list[int]:
        """Token ids of a prompt (str, or ids) with its images' tokens laid out (see module doc).
        Gemma 3: each <start_of_image> (the boi id in an id list) marks an image; with none, the
        images come first. PaliGemma: image tokens, then BOS + prompt + "\\n" (a str prompt) or the
        ids as given."""
        if n_images < 1:
            raise ValueError("generate: images must hold at least one image")
        if self.kind == "paligemma":
            head = [self.image_token_id] * (self.tokens_per_image * n_images)
            if isinstance(prompt, str):
                return head + tokenizer.encode(prompt + "\n", add_bos=True)
            return head + [int(t) for t in prompt]
        image = [self.image_token_id] * self.tokens_per_image
        if isinstance(prompt, str):
            boi, eoi = "<start_of_image>", "<end_of_image>"
            count = prompt.count(boi)
            if count == 0:
                prompt, count = " ".join([boi] * n_images) + prompt, n_images
            if count != n_images:
                raise ValueError(f"generate: the prompt has {count} {boi} placeholders for "
                                 f"{n_images} images")
            if num_crops and any(num_crops):  # the processor's wording for pan-and-scan crops
                parts = prompt.split(boi)
                prompt = parts[0]
                for i, nc in enumerate(num_crops):
                    prompt += (boi if not nc else f"Here is the original image {boi} and here are "
                               "some crops to help you see better " + " ".join([boi] * nc)) + parts[i + 1]
                n_images += sum(num_crops)
            # boi, the soft tokens and eoi are special tokens that split the text, so the soft
            # tokens can be put in after tokenizing (the tokenizer need not know them).
            text = prompt.replace(boi, "\n\n" + boi + eoi + "\n\n")
            ids = tokenizer.encode(text, add_bos=True)
            if ids.count(self.boi_id) != n_images:
                raise ValueError(f"generate: the tokenizer does not map {boi} to id {self.boi_id}")
            out = []
            for t in ids:
                out += [t] + image if t == self.boi_id else [t]
            return out
        if num_crops and any(num_crops):
            raise NotImplementedError("pan-and-scan crops need a text prompt (their framing is text)")
        ids = [int(t) for t in prompt]
        count = ids.count(self.boi_id)
        if count == 0:
            ids, count = [self.boi_id] * n_images + ids, n_images
        if count != n_images:
            raise ValueError(f"generate: the prompt has {count} start-of-image ids for {n_images} images")
        out = []
        for t in ids:
            out += [t] + image + [self.eoi_id] if t == self.boi_id else [t]
        return out
