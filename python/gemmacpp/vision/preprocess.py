"""Image preprocessing for the SigLIP-based models, as transformers' PIL image processors do it.

    pixels = gemmacpp.vision.preprocess([img1, img2], size=896, resample="bilinear")  # Gemma 3
    pixels = gemmacpp.vision.preprocess(img, size=224, resample="bicubic")            # PaliGemma

Images are PIL images or uint8 arrays [H, W, 3] (RGB; [H, W] or [H, W, 1] grayscale and
[H, W, 4] RGBA are converted: transparency is composited onto white). Each is converted to RGB,
resized to size x size with Pillow, rescaled by 1/255 and normalised (x - mean) / std, giving
float32 [N, 3, size, size] (in [-1, 1] with the default mean = std = 0.5). Pillow is needed for
resizing (pip install pillow).
"""
from __future__ import annotations

import numpy as np

RESAMPLE = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}


def _pil():
    from .._extras import require
    return require("PIL.Image", "gemmacpp.vision (reading and resizing images)")


def _is_pil(image) -> bool:
    try:
        from PIL import Image
    except ImportError:
        return False
    return isinstance(image, Image.Image)


def to_rgb(image, index: int = 0):
    """The image as a PIL RGB image, with clear errors for what cannot be one."""
    Image = _pil()
    what = f"image {index}"
    if _is_pil(image):
        if image.width == 0 or image.height == 0:
            raise ValueError(f"{what} is empty ({image.width} x {image.height})")
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"{what}: arrays must be uint8 [H, W, 3] (0..255), got {image.dtype}; "
                            "pass float pixels with preprocess=False")
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)):
            raise ValueError(f"{what}: expected [H, W, 3] (RGB), [H, W, 4] (RGBA) or [H, W] "
                             f"(grayscale) uint8, got shape {image.shape}")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"{what} is empty (shape {image.shape})")
        mode = {2: "L", 3: "RGB", 4: "RGBA"}[image.shape[-1] if image.ndim == 3 else 2]
        image = Image.fromarray(np.ascontiguousarray(image), mode)
    else:
        raise TypeError(f"{what}: expected a PIL image or a uint8 array, got {type(image).__name__}")
    # As transformers' convert_to_rgb: transparency goes onto a white background.
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _image_list(images) -> list:
    """One image (a PIL image, an [H, W] or [H, W, C] array) or a sequence of images, as a list."""
    if _is_pil(images) or (isinstance(images, np.ndarray) and images.ndim in (2, 3)):
        return [images]
    if isinstance(images, (str, bytes)) or not hasattr(images, "__iter__"):
        raise TypeError("images must be a PIL image, a uint8 array [H, W, 3] or a list of them, "
                        f"got {type(images).__name__}")
    return list(images)


def preprocess(images, *, size: int, resample: str | int = "bilinear", mean=0.5, std=0.5,
               rescale: float = 1 / 255) -> np.ndarray:
    """float32 pixels [N, 3, size, size] for one image or a list of images (see the module doc)."""
    images = _image_list(images)
    if not images:
        raise ValueError("no images")
    if isinstance(resample, str):
        if resample not in RESAMPLE:
            raise ValueError(f"resample must be one of {sorted(RESAMPLE)}, got {resample!r}")
        resample = RESAMPLE[resample]
    mean32 = np.asarray(mean, np.float32).reshape(-1, 1, 1) if np.ndim(mean) else np.float32(mean)
    std32 = np.asarray(std, np.float32).reshape(-1, 1, 1) if np.ndim(std) else np.float32(std)
    out = np.empty((len(images), 3, size, size), np.float32)
    for i, image in enumerate(images):
        rgb = to_rgb(image, i).resize((size, size), resample=resample)
        chw = np.asarray(rgb).transpose(2, 0, 1)
        # The processors rescale in float64, round to float32, then normalise in float32.
        x = (chw.astype(np.float64) * rescale).astype(np.float32)
        out[i] = (x - mean32) / std32
    return out


def pixels_from(images, *, size: int, channels: int = 3, preprocess_images: bool = True, **settings):
    """Images (preprocessed with `settings`) or, with preprocess_images=False, float pixels
    [N, channels, size, size] (a single [channels, size, size] is one image), as float32."""
    if preprocess_images:
        return preprocess(images, size=size, **settings)
    arr = np.asarray(images)
    if arr.dtype.kind != "f":
        raise TypeError(f"pixels must be floats (preprocess=False), got {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1:] != (channels, size, size) or arr.shape[0] == 0:
        raise ValueError(f"pixels must be [N, {channels}, {size}, {size}], got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def pan_and_scan_crops(image, *, min_crop_size: int = 256, max_num_crops: int = 4,
                       min_ratio_to_activate: float = 1.2, index: int = 0) -> list:
    """Gemma 3's pan-and-scan: an image much wider (taller) than high (wide) is cut into 2 ..
    max_num_crops side-by-side (stacked) crops of about its aspect ratio, each at least
    min_crop_size pixels on its short side; [] when the image is not elongated enough."""
    rgb = np.asarray(to_rgb(image, index))
    height, width = rgb.shape[:2]
    long_, short = (width, height) if width >= height else (height, width)
    if long_ / short < min_ratio_to_activate:
        return []
    n = int(np.floor(long_ / short + 0.5))  # half rounds up
    n = min(int(np.floor(long_ / min_crop_size)), n)
    n = min(max_num_crops, max(2, n))
    n_w, n_h = (n, 1) if width >= height else (1, n)
    crop_w, crop_h = -(-width // n_w), -(-height // n_h)
    if min(crop_w, crop_h) < min_crop_size:
        return []
    # Array slices, as the processor takes them (the last crop may be narrower).
    return [rgb[y:y + crop_h, x:x + crop_w] for y in range(0, crop_h * n_h, crop_h)
            for x in range(0, crop_w * n_w, crop_w)]


def preprocess_pan_and_scan(images, *, size: int, min_crop_size: int = 256,
                            max_num_crops: int = 4, min_ratio_to_activate: float = 1.2,
                            **settings):
    """(pixels, num_crops): each image followed by its pan-and-scan crops, all preprocessed as
    preprocess() does, and the number of crops of each image."""
    images = _image_list(images)
    expanded, num_crops = [], []
    for i, image in enumerate(images):
        crops = pan_and_scan_crops(image, min_crop_size=min_crop_size, max_num_crops=max_num_crops,
                                   min_ratio_to_activate=min_ratio_to_activate, index=i)
        expanded += [image] + crops
        num_crops.append(len(crops))
    return preprocess(expanded, size=size, **settings), num_crops
