"""Vision: image preprocessing, the bare SigLIP tower, and the image side of Gemma 3 / PaliGemma.

    pixels = gemmacpp.vision.preprocess([img1, img2], size=896, resample="bilinear")  # Gemma 3
    tower = gemmacpp.load("siglip-checkpoint/")        # a VisionModel
    tower.encode_image([img1, img2])                   # float32 [2, patches, d]

  preprocess.py    images to float32 pixels as transformers' PIL image processors make them, and
                   Gemma 3's pan-and-scan crops (needs Pillow)
  siglip.py        VisionModel: a bare SiglipVisionModel checkpoint
  image_inputs.py  ImageInputs: the tower and projector of a Gemma 3 / PaliGemma Model, the
                   layout of image tokens in a prompt, and which hooks go to the tower
                   (split_hooks)
"""
from .image_inputs import ImageInputs, split_hooks
from .preprocess import (RESAMPLE, pan_and_scan_crops, pixels_from, preprocess,
                         preprocess_pan_and_scan, to_rgb)
from .siglip import VisionModel

__all__ = ["ImageInputs", "VisionModel", "RESAMPLE", "pan_and_scan_crops", "pixels_from",
           "preprocess", "preprocess_pan_and_scan", "split_hooks", "to_rgb"]
