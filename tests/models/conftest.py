"""Fixtures shared by the model tests: the vision-language checkpoints of vision_fixtures.py, one
per test module. torch and transformers are imported only when a test asks for one, so that the
other tests run without them."""
import pytest

PALIGEMMA = ["paligemma1", "paligemma2"]


def _vision():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import vision_fixtures
    return vision_fixtures


@pytest.fixture(scope="module")
def siglip(tmp_path_factory):
    """(folder, SiglipVisionModel): a bare SigLIP tower."""
    return _vision().build_siglip(tmp_path_factory)


@pytest.fixture(scope="module")
def gemma3(tmp_path_factory):
    """(folder, Gemma3ForConditionalGeneration)."""
    return _vision().build_gemma3(tmp_path_factory)


@pytest.fixture(scope="module", params=PALIGEMMA)
def paligemma(request, tmp_path_factory):
    """(folder, PaliGemmaForConditionalGeneration), PaliGemma 1 and 2."""
    return _vision().build_paligemma(tmp_path_factory, request.param)


@pytest.fixture(scope="module")
def paligemma2(tmp_path_factory):
    return _vision().build_paligemma(tmp_path_factory, "paligemma2")
