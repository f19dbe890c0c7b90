"""SigLIP vision tower against transformers' SiglipVisionModel on small random checkpoints."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import gemmacpp as gc
from vision_fixtures import REL_TOL, pixels, rel_err


def test_last_hidden_state_matches(siglip):
    folder, ref_model = siglip
    m = gc.load(folder)
    assert m.config["num_patches"] == 25 and m.config["hidden_size"] == 48
    px = pixels(3, 2, 35)
    with torch.no_grad():
        ref = ref_model(pixel_values=px).last_hidden_state.double().numpy()
    out = m.encode_image(px.numpy(), preprocess=False)
    assert out.shape == (3, 25, 48) and out.dtype == np.float32
    assert rel_err(out, ref) < REL_TOL
    # One image at a time gives the same rows as the batch, bitwise.
    one = m.encode_image(px[1].numpy(), preprocess=False)
    assert np.array_equal(one[0], out[1])


def test_threads_bitwise(siglip):
    folder, _ = siglip
    m = gc.load(folder)
    px = np.random.default_rng(3).uniform(-1, 1, (2, 3, 35, 35)).astype(np.float32)
    n = gc.get_num_threads()
    try:
        gc.set_num_threads(1)
        a = m.encode_image(px, preprocess=False)
        gc.set_num_threads(2)
        b = m.encode_image(px, preprocess=False)
    finally:
        gc.set_num_threads(n)
    assert np.array_equal(a, b)


def test_images_are_preprocessed(siglip):
    pytest.importorskip("PIL")
    folder, ref_model = siglip
    m = gc.load(folder)
    img = np.random.default_rng(4).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    proc = transformers.SiglipImageProcessorPil(size={"height": 35, "width": 35})
    px = proc(images=[img], return_tensors="np")["pixel_values"]
    with torch.no_grad():
        ref = ref_model(pixel_values=torch.from_numpy(px)).last_hidden_state.double().numpy()
    assert rel_err(m.encode_image([img]), ref) < REL_TOL


def test_bad_pixels(siglip):
    folder, _ = siglip
    m = gc.load(folder)
    with pytest.raises(ValueError, match=r"\[N, 3, 35, 35\]"):
        m.encode_image(np.zeros((1, 3, 28, 28), np.float32), preprocess=False)
    with pytest.raises(TypeError, match="floats"):
        m.encode_image(np.zeros((1, 3, 35, 35), np.uint8), preprocess=False)
    with pytest.raises(TypeError, match="text forward"):
        m.forward([1, 2])


def test_missing_tensor_is_named(siglip, tmp_path):
    import shutil
    from safetensors.numpy import load_file, save_file
    folder, _ = siglip
    shutil.copy(f"{folder}/config.json", tmp_path / "config.json")
    t = load_file(f"{folder}/model.safetensors")
    del t["encoder.layers.1.mlp.fc2.bias"]
    save_file(t, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="encoder.layers.1.mlp.fc2.bias"):
        gc.load(str(tmp_path))
