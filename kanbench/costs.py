"""The FLOP convention shared by the analytic formulas and the counting harness.

1 multiply-add = 2 FLOPs (a matmul of (M, K) by (K, N) costs 2·M·N·K), as torch's ``FlopCounterMode`` counts it.

Elementwise work is what KANs live on, so kanbench counts it instead of calling it free: every elementwise op costs
the FLOPs per output element below, reductions cost per *input* element. Special functions (exp, erf, ...) count as
one FLOP each, like the GPU's special-function unit issues them; composite activations count their decomposition
(GELU = x·0.5·(1 + erf(x/√2)): 5; SiLU = x·sigmoid(x) with sigmoid = 1/(1 + exp(-x)): 5). Data movement (views,
copies, indexing, concatenation) is 0 FLOPs. Backward by convention costs twice the forward (input and weight
gradients of every matmul; the same factor is applied to elementwise work); the counting harness reports what the
backward really dispatches beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

# FLOPs per output element of one elementwise op (names are aten overload packets).
ELEMENTWISE: dict[str, int] = {
    "add": 1, "sub": 1, "rsub": 1, "mul": 1, "div": 1, "neg": 1, "abs": 1, "sign": 1, "sgn": 1, "relu": 1,
    "maximum": 1, "minimum": 1, "clamp": 1, "clamp_min": 1, "clamp_max": 1, "where": 1, "exp": 1, "log": 1,
    "erf": 1, "tanh": 1, "sqrt": 1, "rsqrt": 1, "reciprocal": 1, "square": 1, "pow": 1, "gt": 1, "ge": 1, "lt": 1,
    "le": 1, "eq": 1, "ne": 1, "logical_and": 1, "bitwise_and": 1, "threshold_backward": 1, "addcmul": 2,
    "cos": 1, "sin": 1, "acos": 1,
    "addcdiv": 2, "lerp": 2, "isnan": 1,
    "sigmoid": 4, "silu": 5, "gelu": 5, "softplus": 3, "elu": 4, "leaky_relu": 2,
    # backward of the activations above: derivative evaluation plus the multiply by the upstream gradient
    "sigmoid_backward": 3, "tanh_backward": 3, "silu_backward": 8, "gelu_backward": 9,
}

# FLOPs per input element of one reduction (or normalisation) op.
REDUCTION: dict[str, int] = {
    "sum": 1, "mean": 1, "amax": 1, "amin": 1, "max": 1, "min": 1, "norm": 2, "linalg_vector_norm": 2,
    "var": 3, "std": 3, "var_mean": 4, "std_mean": 4,
    # max, subtract, exp, sum, divide
    "_softmax": 5, "_log_softmax": 5, "_softmax_backward_data": 4,
    # mean, centre, square, sum, scale, affine multiply and add (rsqrt per row is negligible)
    "native_layer_norm": 7, "native_layer_norm_backward": 12,
}

# Ops that carry a matmul: the matmul part is counted by FlopCounterMode; the bias add of addmm is elementwise.
MATMUL_BIAS_ADD = {"addmm", "baddbmm"}

GELU = ELEMENTWISE["gelu"]
SILU = ELEMENTWISE["silu"]
LAYER_NORM = REDUCTION["native_layer_norm"]
SOFTMAX = REDUCTION["_softmax"]


@dataclass(frozen=True)
class Cost:
    """Analytic cost of one module: parameters, and forward FLOPs per token (matmul and elementwise parts)."""

    params: int
    matmul_flops: int
    elementwise_flops: int

    @property
    def fwd_flops(self) -> int:
        return self.matmul_flops + self.elementwise_flops

    @property
    def fwd_bwd_flops(self) -> int:
        """Training step: forward plus a backward of twice the forward (the module docstring's convention)."""
        return 3 * self.fwd_flops

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.params + other.params,
            self.matmul_flops + other.matmul_flops,
            self.elementwise_flops + other.elementwise_flops,
        )


def linear_cost(d_in: int, d_out: int, bias: bool = True) -> Cost:
    """``W x + b``: 2·d_in·d_out matmul FLOPs and d_out bias adds per token."""
    return Cost(d_in * d_out + (d_out if bias else 0), 2 * d_in * d_out, d_out if bias else 0)
