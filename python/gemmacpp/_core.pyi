"""
gemmacpp C++ core (use the gemmacpp package, not this module)
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
import typing_extensions
__all__: list[str] = ['Cache', 'Loaded', 'MappedBytes', 'Tensor', 'TextEncoder', 'TextModel', 'Tokenizer', 'VisionProjector', 'VisionTower', 'WeightFile', 'altup_correct', 'altup_predict', 'altup_rescale', 'attention', 'conv1d_temporal', 'cuda_compiled', 'dequantize', 'devices', 'families', 'gaussian_topk', 'geglu', 'gelu_tanh', 'get_num_threads', 'layer_norm', 'linear', 'linear_quantized', 'load', 'moe', 'moe_route', 'open_weights', 'quant_matvec_fused', 'rg_lru', 'rms_norm', 'rope', 'sae_decode', 'sae_decode_dense', 'sae_encode', 'set_num_threads', 'set_simd_target', 'simd_target', 'simd_targets_compiled', 'simd_targets_supported', 'softcap', 'token_logprobs', 'tokenizer_from_gguf', 'tokenizer_from_hf_json', 'tokenizer_from_model', 'tokenizer_from_weights']
class Tensor:
    """
    A result owned by gemmacpp; speaks the buffer protocol and DLPack
    """
    def __dlpack__(self, *, stream: typing.Any = None, max_version: typing.Any = None, dl_device: typing.Any = None, copy: typing.Any = None) -> typing_extensions.CapsuleType:
        ...
    def __dlpack_device__(self) -> tuple[int, int]:
        ...
    @property
    def device(self) -> str:
        ...
    @property
    def dtype(self) -> str:
        ...
    @property
    def shape(self) -> tuple:
        ...
class MappedBytes:
    """
    Read-only bytes of a mapped weight file; keeps the mapping alive
    """
    def __len__(self) -> int:
        ...
class WeightFile:
    """
    A parsed, memory-mapped weight file (use gemmacpp.weights.open)
    """
    def __contains__(self, arg0: str) -> bool:
        ...
    def __len__(self) -> int:
        ...
    def metadata(self) -> dict:
        ...
    def metadata_types(self) -> dict:
        ...
    def names(self) -> list:
        ...
    def tensor_bytes(self, name: str) -> MappedBytes:
        ...
    def tensor_info(self, name: str) -> dict:
        ...
    @property
    def format(self) -> str:
        ...
    @property
    def path(self) -> str:
        ...
class Tokenizer:
    """
    Gemma's BPE tokenizer (use gemmacpp.tokenizer.Tokenizer)
    """
    def decode(self, ids: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], skip_special: bool) -> str:
        ...
    def encode(self, text: str, add_bos: bool) -> list[int]:
        ...
    def id_to_piece(self, id: typing.SupportsInt | typing.SupportsIndex) -> str:
        ...
    def is_special(self, id: typing.SupportsInt | typing.SupportsIndex) -> bool:
        ...
    def piece_to_id(self, piece: str) -> int:
        ...
    @property
    def bos_id(self) -> int:
        ...
    @property
    def eos_id(self) -> int:
        ...
    @property
    def pad_id(self) -> int:
        ...
    @property
    def unk_id(self) -> int:
        ...
    @property
    def vocab_size(self) -> int:
        ...
class VisionTower:
    """
    A SigLIP vision tower (use gemmacpp.load)
    """
    def config(self) -> dict:
        ...
    def encode(self, pixels: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], hooks: typing.Any = None) -> numpy.typing.NDArray[numpy.float32]:
        """
        last hidden state [N, P, d] float32 for pixels [N, C, S, S]; hooks: an object with .names (vision hook names) called as hooks(name, activation) (see gemmacpp.hooks)
        """
    def hook_names(self) -> list[str]:
        """
        the vision hook points' names, in the order encode reaches them
        """
    @property
    def path(self) -> str:
        ...
class VisionProjector:
    def project(self, features: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> numpy.typing.NDArray[numpy.float32]:
        ...
    @property
    def out_dim(self) -> int:
        ...
    @property
    def tokens(self) -> int:
        ...
class Cache:
    """
    What a text model keeps between forwards, per sequence and layer
    """
    def copy(self) -> Cache:
        ...
    def layer_nbytes(self) -> list[int]:
        ...
    def reset(self) -> None:
        ...
    def select(self, sequences: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> Cache:
        """
        a new cache with copies of these sequences, in this order (repeats allowed)
        """
    @property
    def batch(self) -> int:
        ...
    @property
    def length(self) -> int:
        """
        positions held by every sequence (they must all have the same length)
        """
    @property
    def lengths(self) -> list[int]:
        """
        positions held, per sequence
        """
    @property
    def max_len(self) -> int:
        ...
    @property
    def nbytes(self) -> int:
        ...
class TextModel:
    """
    A text model (use gemmacpp.load)
    """
    def config(self) -> dict:
        ...
    def forward(self, tokens: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], cache: Cache = None, lengths: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex] | None = None, last_only: bool = False, embeds: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None = None, embed_mask: typing.Annotated[numpy.typing.ArrayLike, numpy.uint8] | None = None, spans: typing.Annotated[numpy.typing.ArrayLike, numpy.int64] | None = None, span_in_window: bool = True, position_offset: typing.SupportsInt | typing.SupportsIndex = 0, hooks: typing.Any = None) -> numpy.typing.NDArray[numpy.float32]:
        """
        logits [B, T, V] (or [B, 1, V] with last_only) float32 for int64 tokens [B, T], rows right-padded past lengths[b]; hooks: an object with .names that is called as hooks(name, activation) for each of those hook points (see gemmacpp.hooks)
        """
    def hook_names(self) -> list[str]:
        """
        every hook point's name, in the order a forward reaches them
        """
    def new_cache(self, batch: typing.SupportsInt | typing.SupportsIndex, max_len: typing.SupportsInt | typing.SupportsIndex) -> Cache:
        ...
    @property
    def path(self) -> str:
        ...
class TextEncoder:
    """
    A text encoder: an embedding model (use gemmacpp.load)
    """
    def config(self) -> dict:
        ...
    def encode(self, tokens: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], lengths: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex] | None = None, pool_skip: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex] | None = None, hooks: typing.Any = None) -> numpy.typing.NDArray[numpy.float32]:
        """
        one vector [B, out_dim] float32 per row of int64 tokens [B, T], rows right-padded past lengths[b]; pool_skip: per row, leading tokens the mean pooling leaves out
        """
    def hook_names(self) -> list[str]:
        """
        every hook point's name, in the order encode reaches them
        """
    @property
    def normalizes(self) -> bool:
        ...
    @property
    def out_dim(self) -> int:
        ...
    @property
    def path(self) -> str:
        ...
    @property
    def pool_includes_prompt(self) -> bool:
        ...
class Loaded:
    """
    What a checkpoint holds (see gemmacpp.load)
    """
    @property
    def encoder(self) -> TextEncoder:
        ...
    @property
    def family(self) -> str:
        ...
    @property
    def kind(self) -> str:
        ...
    @property
    def projector(self) -> VisionProjector:
        ...
    @property
    def text(self) -> TextModel:
        ...
    @property
    def vision(self) -> VisionTower:
        ...
def altup_correct(predictions: typing.Any, activated: typing.Any, router_logits: typing.Any, coefs: typing.Any, out: typing.Any = None) -> typing.Any:
    ...
def altup_predict(streams: typing.Any, router_logits: typing.Any, coefs: typing.Any, out: typing.Any = None) -> typing.Any:
    ...
def altup_rescale(streams: typing.Any, eps: typing.SupportsFloat | typing.SupportsIndex, out: typing.Any = None) -> typing.Any:
    ...
def attention(q: typing.Any, k: typing.Any, v: typing.Any, *, causal: bool = True, window: typing.SupportsInt | typing.SupportsIndex | None = None, softcap: typing.SupportsFloat | typing.SupportsIndex | None = None, scale: typing.SupportsFloat | typing.SupportsIndex | None = None, q_start: typing.SupportsInt | typing.SupportsIndex | None = None, prefix_len: typing.SupportsInt | typing.SupportsIndex = 0, key_range: typing.Any = None, cu_seqlens_q: typing.Any = None, cu_seqlens_k: typing.Any = None, out: typing.Any = None) -> typing.Any:
    ...
def conv1d_temporal(x: typing.Any, weight: typing.Any, bias: typing.Any = None, state: typing.Any = None, reset: typing.Any = None) -> tuple[typing.Any, typing.Any]:
    """
    (y [B, T, W], new_state [B, K-1, W])
    """
def dequantize(data: typing.Any, qtype: str, n: typing.SupportsInt | typing.SupportsIndex, k: typing.SupportsInt | typing.SupportsIndex) -> typing.Any:
    ...
def devices() -> list[str]:
    ...
def families() -> list[str]:
    """
    the model families gemmacpp reads, and from which formats
    """
def gaussian_topk(x: typing.Any, z: typing.SupportsFloat | typing.SupportsIndex, out: typing.Any = None) -> typing.Any:
    ...
def geglu(gate: typing.Any, up: typing.Any, out: typing.Any = None) -> typing.Any:
    ...
def gelu_tanh(x: typing.Any, out: typing.Any = None) -> typing.Any:
    ...
def get_num_threads() -> int:
    ...
def layer_norm(x: typing.Any, weight: typing.Any, bias: typing.Any, eps: typing.SupportsFloat | typing.SupportsIndex, out: typing.Any = None) -> typing.Any:
    ...
def linear(x: typing.Any, weight: typing.Any, bias: typing.Any = None, out: typing.Any = None, activations: str = 'float32') -> typing.Any:
    ...
def linear_quantized(x: typing.Any, data: typing.Any, qtype: str, n: typing.SupportsInt | typing.SupportsIndex, k: typing.SupportsInt | typing.SupportsIndex, bias: typing.Any = None, out: typing.Any = None, activations: str = 'float32') -> typing.Any:
    ...
def load(path: str, matformer_ffn: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex] = [], matformer_skip_layers: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex] = [], mmap: bool = True, activations: str = 'float32') -> Loaded:
    """
    The model a checkpoint holds: a HF checkpoint folder, a .safetensors file next to its config.json, or a .gguf file; mmap=False reads the weight files into memory
    """
def moe(x: typing.Any, ids: typing.Any, weights: typing.Any, gate_up: typing.Any, gate_up_qtype: typing.Any, gate_up_shape: typing.Any, down: typing.Any, down_qtype: typing.Any, down_shape: typing.Any, out: typing.Any = None) -> typing.Any:
    ...
def moe_route(logits: typing.Any, k: typing.SupportsInt | typing.SupportsIndex, per_expert_scale: typing.Any = None) -> tuple[typing.Any, typing.Any]:
    """
    (ids [..., k] int32, weights [..., k] float32)
    """
def open_weights(path: str) -> WeightFile:
    """
    Parse a .gguf / .safetensors file or a safetensors checkpoint folder
    """
def quant_matvec_fused(qtype: str) -> bool:
    """
    Whether linear's matrix-vector path reads this qtype's blocks in registers on the SIMD target dispatched to now (False: a generic path that expands each row first)
    """
def rg_lru(x: typing.Any, gate_x: typing.Any, gate_a: typing.Any, a_param: typing.Any, h0: typing.Any = None, reset: typing.Any = None, c: typing.SupportsFloat | typing.SupportsIndex = 8.0) -> tuple[typing.Any, typing.Any]:
    """
    (y [B, T, W], h_last [B, W] float32)
    """
def rms_norm(x: typing.Any, weight: typing.Any, eps: typing.SupportsFloat | typing.SupportsIndex, unit_offset: bool, out: typing.Any = None) -> typing.Any:
    ...
def rope(x: typing.Any, positions: typing.Any, base: typing.SupportsFloat | typing.SupportsIndex, scale: typing.SupportsFloat | typing.SupportsIndex, rotary_dim: typing.SupportsInt | typing.SupportsIndex | None = None, rotated_pairs: typing.SupportsInt | typing.SupportsIndex | None = None, out: typing.Any = None) -> typing.Any:
    ...
def sae_decode(values: typing.Any, indices: typing.Any, offsets: typing.Any, w_dec: typing.Any, b_dec: typing.Any = None, out: typing.Any = None) -> typing.Any:
    ...
def sae_decode_dense(acts: typing.Any, w_dec: typing.Any, b_dec: typing.Any = None, out: typing.Any = None) -> typing.Any:
    ...
def sae_encode(x: typing.Any, w_enc: typing.Any, b_enc: typing.Any, threshold: typing.Any, k: typing.SupportsInt | typing.SupportsIndex, activation: str, b_dec: typing.Any, sparse: bool, dense: bool, pre: bool) -> tuple[typing.Any, typing.Any, typing.Any, typing.Any, typing.Any]:
    """
    (values, indices, offsets, dense, pre), None where not asked for
    """
def set_num_threads(n: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def set_simd_target(name: str | None) -> None:
    """
    Dispatch every CPU kernel to the named target (one of simd_targets_supported()), or back to the best one for None. For tests and benchmarks; not while an op runs.
    """
def simd_target() -> str:
    """
    The Highway target the CPU kernels dispatch to on this machine
    """
def simd_targets_compiled() -> list[str]:
    ...
def simd_targets_supported() -> list[str]:
    """
    The compiled Highway targets this CPU can run, best first
    """
def softcap(x: typing.Any, cap: typing.SupportsFloat | typing.SupportsIndex, out: typing.Any = None) -> typing.Any:
    ...
def token_logprobs(logits: typing.Any, targets: typing.Any) -> tuple[typing.Any, typing.Any]:
    """
    (logp [...] float64, argmax [...] int64)
    """
def tokenizer_from_gguf(path: str) -> Tokenizer:
    ...
def tokenizer_from_hf_json(path: str) -> Tokenizer:
    ...
def tokenizer_from_model(model: ...) -> Tokenizer:
    ...
def tokenizer_from_weights(file: WeightFile) -> Tokenizer:
    ...
__version__: str = '0.0.0+dev'
cuda_compiled: bool = False
