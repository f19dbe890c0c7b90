"""gemmacpp.vision.preprocess against transformers' PIL image processors (Gemma 3: bilinear;
SigLIP / PaliGemma: bicubic) on several sizes and aspect ratios, and clear errors for bad images."""
import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
transformers = pytest.importorskip("transformers")
from PIL import Image

from gemmacpp import vision

SHAPES = [(30, 30), (17, 50), (120, 33), (224, 224), (7, 3), (300, 200)]


def image(rng, h, w, c=3):
    return rng.integers(0, 256, (h, w, c) if c else (h, w), dtype=np.uint8)


@pytest.mark.parametrize("size", [28, 64])
@pytest.mark.parametrize("kind", ["gemma3", "siglip"])
def test_equals_processor(kind, size):
    rng = np.random.default_rng(size)
    imgs = [image(rng, h, w) for h, w in SHAPES]
    if kind == "gemma3":
        proc = transformers.Gemma3ImageProcessorPil(size={"height": size, "width": size})
        resample = "bilinear"
    else:
        proc = transformers.SiglipImageProcessorPil(size={"height": size, "width": size})
        resample = "bicubic"
    want = proc(images=imgs, return_tensors="np")["pixel_values"]
    got = vision.preprocess(imgs, size=size, resample=resample)
    assert got.dtype == np.float32 and got.shape == (len(imgs), 3, size, size)
    assert np.array_equal(got, want)
    # PIL images give the same pixels as their arrays.
    assert np.array_equal(vision.preprocess([Image.fromarray(a) for a in imgs], size=size,
                                            resample=resample), want)


def test_grayscale_and_alpha_like_processor():
    rng = np.random.default_rng(1)
    proc = transformers.Gemma3ImageProcessorPil(size={"height": 32, "width": 32})
    for img in [Image.fromarray(image(rng, 40, 20, 0), "L"),
                Image.fromarray(image(rng, 25, 45, 4), "RGBA")]:
        want = proc(images=[img], return_tensors="np")["pixel_values"]
        assert np.array_equal(vision.preprocess(img, size=32), want)
    gray = image(rng, 20, 30, 0)
    assert np.array_equal(vision.preprocess(gray, size=16), vision.preprocess(gray[..., None], size=16))


def test_range():
    x = vision.preprocess(np.full((5, 5, 3), 255, np.uint8), size=8)
    assert np.all(x == 1.0)
    assert np.all(vision.preprocess(np.zeros((5, 5, 3), np.uint8), size=8) == -1.0)


def test_bad_images_rejected():
    with pytest.raises(TypeError, match="uint8"):
        vision.preprocess(np.zeros((8, 8, 3), np.float32), size=8)
    with pytest.raises(ValueError, match="shape"):
        vision.preprocess(np.zeros((8, 8, 5), np.uint8), size=8)
    with pytest.raises(ValueError, match="shape"):
        vision.preprocess(np.zeros((2, 8, 8, 3), np.uint8)[None], size=8)
    with pytest.raises(ValueError, match="empty"):
        vision.preprocess(np.zeros((0, 8, 3), np.uint8), size=8)
    with pytest.raises(TypeError, match="PIL image or a uint8 array"):
        vision.preprocess(["not an image"], size=8)
    with pytest.raises(ValueError, match="no images"):
        vision.preprocess([], size=8)
    for not_images in (None, "photo.png", 3):
        with pytest.raises(TypeError, match="images must be a PIL image"):
            vision.preprocess(not_images, size=8)
        with pytest.raises(TypeError, match="images must be a PIL image"):
            vision.preprocess_pan_and_scan(not_images, size=8)
    with pytest.raises(ValueError, match="resample"):
        vision.preprocess(np.zeros((4, 4, 3), np.uint8), size=8, resample="cubicle")


@pytest.mark.parametrize("shape", [(100, 400), (400, 90), (300, 330), (120, 1000), (260, 600)])
def test_pan_and_scan_equals_processor(shape):
    rng = np.random.default_rng(shape[0])
    img = image(rng, *shape)
    kw = dict(pan_and_scan_min_crop_size=64, pan_and_scan_max_num_crops=4,
              pan_and_scan_min_ratio_to_activate=1.2)
    proc = transformers.Gemma3ImageProcessorPil(size={"height": 32, "width": 32}, do_pan_and_scan=True, **kw)
    want = proc(images=[img], return_tensors="np")
    px, crops = vision.preprocess_pan_and_scan(img, size=32, min_crop_size=64, max_num_crops=4,
                                               min_ratio_to_activate=1.2)
    assert crops == list(want["num_crops"])
    assert crops[0] > 0 or shape == (300, 330)  # crops were made where the image is elongated
    assert np.array_equal(px, want["pixel_values"])
