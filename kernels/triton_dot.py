"""The tl.dot both matmul-shaped kernels use (the fused GR-KAN matmul, the Spark decode gather-matvecs)."""

import triton
import triton.language as tl


@triton.jit
def dot(a, b, IEEE: tl.constexpr):
    """a @ b with fp32 accumulation. IEEE (see kernels/launch.py needs_ieee_dot): operands as fp32 multiplied in
    full precision, not TF32; otherwise the operands' own dtype on the tensor cores."""
    if IEEE:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    else:
        return tl.dot(a, b)
