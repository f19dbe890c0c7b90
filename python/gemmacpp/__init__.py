"""gemmacpp: Gemma-family models and kernels for research, on a C++ core.

    import gemmacpp as gc
    gc.ops.attention(q, k, v, causal=True, window=512)
"""
from . import _core
from . import ops, tokenizer, weights
from .quant import QuantizedTensor
from .loader import load
from .model import Model
from .embedding import EmbeddingModel, cosine_similarity
from . import sae
from .sae import harvest
from ._runtime import devices, get_num_threads, set_num_threads, simd_target

__version__ = _core.__version__


def __getattr__(name):
    if name == "distributed":  # imported on first use: it needs Ray, the rest does not
        import importlib
        return importlib.import_module(".distributed", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["load", "Model", "EmbeddingModel", "cosine_similarity", "ops", "tokenizer", "weights", "QuantizedTensor", "sae", "harvest", "devices",
           "set_num_threads", "get_num_threads", "simd_target", "__version__"]
