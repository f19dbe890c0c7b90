"""GGUF-quantized tensors, kept in their blocks."""
from dataclasses import dataclass


@dataclass(frozen=True)
class QuantizedTensor:
    """A matrix stored in one of GGML's block-quantized types, never expanded in memory.

    data:  the raw blocks as a uint8 array (NumPy or any DLPack tensor), rows of blocks in order.
    qtype: the GGML type name: "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K" ... "Q6_K".
    shape: the logical shape in NumPy order: (N, K) for a weight of N rows of K values (GGUF lists
           the same dimensions innermost first, as (K, N)); K is a multiple of the block size.
           A mixture-of-experts stack (GGUF's ffn_gate_up_exps, ffn_down_exps) is (E, N, K): E
           such matrices back to back, as gc.ops.moe takes it.
    """

    data: object
    qtype: str
    shape: tuple
