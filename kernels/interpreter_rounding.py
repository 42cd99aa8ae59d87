"""Triton's CPU interpreter rounds fp32 → bf16 as the GPU does, once kanbench has patched it.

A GPU converts fp32 to bf16 by rounding to nearest, ties to even (``cvt.rn.bf16.f32``; ``tl.cast``'s default
``fp_downcast_rounding``). The interpreter (TRITON_INTERPRET=1, triton 3.9) drops the low 16 bits instead, on
every ``.to(tl.bfloat16)`` and every store into a bf16 tensor: each conversion errs by up to a whole ulp, always
towards zero. A KAN layer's features are rounded that way before its matmul, so under the interpreter a bf16 output
erred by 0.92 ulp (median, Chebyshev layer, 24 × 16 → 40) where the kernel's math on a GPU errs by 0.38: the
interpreter tests would judge a worse kernel than the one that runs. Its explicit ``"rtne"`` path is no cure: it
agreed with torch's rounding on 50 % of 4096 random values.

:func:`round_bf16_to_nearest` replaces the interpreter's fp32 → bf16 conversion by the GPU's rounding (NaN kept
NaN) and its bf16 → fp32 one by the exact widening (the stock one flushes bf16 subnormals to zero); every other
conversion, and ``"rtz"``, stays the interpreter's own. Applied when a Triton kernel is first
considered on the CPU (:mod:`kanbench.kernels.launch`), never on a GPU.
"""

from __future__ import annotations

import functools

import numpy as np


def rne_bf16_bits(values: np.ndarray) -> np.ndarray:
    """The bf16 bit patterns (uint16) nearest to the fp32 ``values``, ties to even; NaN stays a quiet NaN."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = (bits & 0x7FFFFFFF) > 0x7F800000
    return np.where(nan, ((bits >> 16) | 0x40).astype(np.uint16), rounded).reshape(np.shape(values))


@functools.cache
def round_bf16_to_nearest() -> bool:
    """Patch the interpreter's float conversion (once); False where its internals are not the ones this patch
    knows (another triton), which leaves it as it is."""
    try:
        import triton.language as tl
        from triton.runtime import interpreter
    except ImportError:
        return False
    convert = getattr(interpreter, "_convert_float", None)
    rtz = getattr(getattr(getattr(interpreter, "_ir", None), "ROUNDING_MODE", None), "RTZ", None)
    if convert is None or rtz is None:
        return False

    @functools.wraps(convert)
    def converted(values, input_dtype, output_dtype, rounding_mode):  # noqa: ANN001, ANN202 (the interpreter's)
        if input_dtype == tl.float32 and output_dtype == tl.bfloat16 and rounding_mode != rtz:
            return rne_bf16_bits(values)
        if input_dtype == tl.bfloat16 and output_dtype == tl.float32:  # exact; the stock path flushes subnormals
            return np.ascontiguousarray(values).view(np.uint16).astype(np.uint32) << 16
        return convert(values, input_dtype, output_dtype, rounding_mode)

    interpreter._convert_float = converted
    return True
