"""``grkan``: GR-KAN, the group-rational KAN of the Kolmogorov-Arnold Transformer.

Yang & Wang, "Kolmogorov-Arnold Transformer" (arXiv 2409.10594, ICLR 2025). One GR-KAN layer is ``Linear(F(x))``:
a safe Padé-style rational of order (5, 4) applied per channel group, then a Linear. In the form every released
kernel computes ("version A"), for a channel in group g:

    F(x) = P(x) / Q(x),  P(x) = a0 + a1·x + ... + a5·x⁵,  Q(x) = 1 + |b0|·|x| + |b1|·|x|² + |b2|·|x|³ + |b3|·|x|⁴

Q >= 1, so there is never a division by ~0. (The paper prints ``1 + |b1 x + ... + bn xⁿ|``; the kernels and the
released checkpoints use the form above.) Channels (the last dim, D) split into ``groups`` contiguous groups: the
group of channel c is ``c // (D / groups)``. Released models share the numerator across groups (a: (1, 6)) and give
each group its own denominator (b: (groups, 4)): 38 parameters per rational at 8 groups.

Gradients (used by the kernels, checked against autograd of this reference):
``dF/dx = P'/Q - sign(x)·(|b0| + 2|b1||x| + 3|b2|x² + 4|b3||x|³)·P/Q²``, ``dF/da_i = xⁱ/Q``,
``dF/db_j = -sign(b_j)·|x|^{j+1}·P/Q²``.

Two choices follow what the authors' code effectively does (the paper is silent on both), each with the other kept
as an option:

- ``sign_at_zero=1`` (default): sign(0) = +1 in both gradients, as the KAT kernels compute it. It matters at the
  identity init, whose denominator is b = 0: with +1, dF/db_j = -|x|^{j+1}·P/Q² ≠ 0 and Q starts to learn; with
  ``sign_at_zero=0`` (autograd's ``abs``) b gets no gradient and stays 0 for ever, a different model.
- ``linear_init="trunc_normal"`` (default): the Linear weights ~ N(0, 0.02²) truncated at ±2 (absolute) and zero
  bias, what KAT's models end with (their init function's last branch overwrites its kaiming call).
  ``"variance_preserving"``: kaiming-normal (fan_in) with gain² = 1/E[F(x)²], x ~ N(0, 1).

The KAT block (its FFN): ``x → F_identity(x) → Linear(d, h) → F_swish(·) → Linear(h, d)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from kanbench.costs import Cost, linear_cost
from kanbench.registry import register
from kanbench.variants.precision import upcast

# Numerator a0..a5 and denominator b0..b3 of the inits, under the form above: the KAT authors' released fits
# (``gelu`` is their "gelu_old" entry, the one that is GELU under this Q; their current "gelu" was fitted to the
# paper's other Q and is off by up to 1.46 on [-3, 3] here). tests/test_variant_math.py checks each against its target.
RATIONAL_INITS: dict[str, tuple[list[float], list[float]]] = {
    "identity": ([0.0, 1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]),
    "swish": ([3.05e-7, 0.50000079, 0.24999783, 0.05326628, 0.00580303, 0.00027520],
              [-4.11e-6, 0.10652899, -1.27e-6, 0.00055023]),
    # the "gelu_old" fit of the KAT repository: correct under this form (its current "gelu" entry is not)
    "gelu": ([-0.00124236, 0.50804971, 0.41586363, 0.13022719, 0.02435590, 0.00290284],
             [-0.06675016, 0.17927646, 0.03746683, 1.66e-10]),
}
# gain² = 1 / E[F(x)²] for x ~ N(0, 1): the variance-preserving init of the Linear that follows F.
GAIN_SQUARED = {"identity": 1.0, "swish": 2.8178, "gelu": 2.3568}
RATIONAL_FLOPS = 20  # |x| 1, P by Horner 10, Q by Horner 8, P/Q 1 (KAT's fvcore handle counts ~21)
DEFAULTS = {"groups": 8, "init": "swish", "shared_numerator": True, "sign_at_zero": 1, "linear_init": "trunc_normal"}
LINEAR_INITS = ("trunc_normal", "variance_preserving")
KAT_LINEAR_STD = 0.02


def validate(d_in: int, d_out: int, groups: int = 8, init: str = "swish", shared_numerator: bool = True,
             sign_at_zero: int = 1, linear_init: str = "trunc_normal") -> None:
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"grkan: groups must be an integer >= 1, got {groups!r}.")
    if d_in % groups:
        raise ValueError(
            f"grkan: width {d_in} is not divisible by groups={groups} (channels split into {groups} contiguous "
            f"groups); use a width that is a multiple of {groups} or a group count that divides {d_in}."
        )
    if init not in RATIONAL_INITS:
        raise ValueError(f"grkan: init must be one of {', '.join(RATIONAL_INITS)}, got {init!r}.")
    if sign_at_zero not in (0, 1):
        raise ValueError(f"grkan: sign_at_zero must be 1 (the KAT kernels' sign(0)) or 0 (autograd's), "
                         f"got {sign_at_zero!r}.")
    if linear_init not in LINEAR_INITS:
        raise ValueError(f"grkan: linear_init must be one of {', '.join(LINEAR_INITS)}, got {linear_init!r}.")


class _SignedAbs(torch.autograd.Function):
    """|x| in the forward (one op, as counted); sign(x) with sign(0) = ``sign_at_zero`` in the backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, sign_at_zero: int) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.sign_at_zero = sign_at_zero
        return x.abs()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        sign = torch.where(x == 0, torch.full_like(x, float(ctx.sign_at_zero)), torch.sign(x))
        return grad * sign, None


def signed_abs(x: torch.Tensor, sign_at_zero: int = 1) -> torch.Tensor:
    """|x| whose derivative is sign(x) with sign(0) = ``sign_at_zero`` (autograd's ``abs`` has 0 there)."""
    return x.abs() if sign_at_zero == 0 else _SignedAbs.apply(x, sign_at_zero)


def rational(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor,
             sign_at_zero: int = 1) -> torch.Tensor:
    """Group-rational F(x) over the last dim of x: numerator (1 or g, 6), denominator (g, 4); ``sign_at_zero`` is
    sign(0) in the gradients of |x| and |b| (see the module docstring).

    16-bit inputs are evaluated in fp32 and the result rounded back, as KAT's kernels and kanbench's do: in fp16,
    x⁵ (and so F and its coefficient gradients) overflows to inf above |x| ≈ 9.2."""
    out_dtype = x.dtype
    x, numerator, denominator = upcast(x, numerator, denominator)
    groups = denominator.shape[0]
    xg = x.reshape(*x.shape[:-1], groups, x.shape[-1] // groups)
    a = numerator.unsqueeze(-1)  # (1|g, 6, 1): broadcasts over the channels of a group
    b = signed_abs(denominator, sign_at_zero).unsqueeze(-1)
    ax = signed_abs(xg, sign_at_zero)
    p = a[:, 5] * xg + a[:, 4]
    for i in (3, 2, 1, 0):
        p = p * xg + a[:, i]
    q = ax * b[:, 3] + b[:, 2]
    for j in (1, 0):
        q = q * ax + b[:, j]
    q = q * ax + 1.0
    return (p / q).reshape(x.shape).to(out_dtype)


class GroupRational(nn.Module):
    """F(x) with learnable coefficients: a (1, 6) shared or (groups, 6), b (groups, 4)."""

    def __init__(self, groups: int = 8, init: str = "swish", shared_numerator: bool = True,
                 sign_at_zero: int = 1) -> None:
        super().__init__()
        a, b = RATIONAL_INITS[init]
        self.numerator = nn.Parameter(torch.tensor(a).repeat(1 if shared_numerator else groups, 1))
        self.denominator = nn.Parameter(torch.tensor(b).repeat(groups, 1))
        self.sign_at_zero = sign_at_zero

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rational(x, self.numerator, self.denominator, self.sign_at_zero)


class GRKANLayer(nn.Module):
    """``y = W · F(x) + b``: the rational on the input, then a Linear (init: see the module docstring)."""

    def __init__(self, d_in: int, d_out: int, groups: int = 8, init: str = "swish",
                 shared_numerator: bool = True, sign_at_zero: int = 1, linear_init: str = "trunc_normal") -> None:
        super().__init__()
        self.rational = GroupRational(groups, init, shared_numerator, sign_at_zero)
        self.linear = nn.Linear(d_in, d_out)
        if linear_init == "trunc_normal":
            nn.init.trunc_normal_(self.linear.weight, std=KAT_LINEAR_STD)
        else:
            nn.init.normal_(self.linear.weight, std=math.sqrt(GAIN_SQUARED[init] / d_in))
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.rational(x))


def op_cost(width: int, groups: int = 8, init: str = "swish", shared_numerator: bool = True, **_: object) -> Cost:
    return Cost(6 * (1 if shared_numerator else groups) + 4 * groups, 0, RATIONAL_FLOPS * width)


def layer_cost(d_in: int, d_out: int, groups: int = 8, init: str = "swish", shared_numerator: bool = True,
               **_: object) -> Cost:
    return op_cost(d_in, groups, init, shared_numerator) + linear_cost(d_in, d_out)


def block_cost(d_model: int, d_hidden: int, groups: int = 8, init: str = "swish",
               shared_numerator: bool = True, **_: object) -> Cost:
    return (layer_cost(d_model, d_hidden, groups, "identity", shared_numerator)
            + layer_cost(d_hidden, d_model, groups, init, shared_numerator))


def make_op(width: int, groups: int = 8, init: str = "swish", shared_numerator: bool = True, sign_at_zero: int = 1,
            linear_init: str = "trunc_normal") -> GroupRational:
    return GroupRational(groups, init, shared_numerator, sign_at_zero)


def edge_inputs(**_: object) -> list[float]:
    """x = 0 (where sign(x) in dF/dx switches) and magnitudes where x⁵ and x⁴ dominate P and Q."""
    return [0.0, -0.0, 1.0, -1.0, 4.0, -4.0]


@register(
    "grkan",
    description="GR-KAN (KAT): group-rational P/Q then Linear; block F_id→Linear→F_swish→Linear",
    paper="Yang & Wang 2025, Kolmogorov-Arnold Transformer (arXiv 2409.10594)",
    block_cost=block_cost,
    defaults=DEFAULTS,
    validate=validate,
    edge_inputs=edge_inputs,
    layer=GRKANLayer,
    layer_cost=layer_cost,
    op=make_op,
    op_cost=op_cost,
)
class GRKANBlock(nn.Module):
    """The KAT FFN: ``Linear(d_hidden → d_model)(F_init(Linear(d_model → d_hidden)(F_identity(x))))``."""

    def __init__(self, d_model: int, d_hidden: int, groups: int = 8, init: str = "swish",
                 shared_numerator: bool = True, sign_at_zero: int = 1, linear_init: str = "trunc_normal") -> None:
        super().__init__()
        self.fc1 = GRKANLayer(d_model, d_hidden, groups, "identity", shared_numerator, sign_at_zero, linear_init)
        self.fc2 = GRKANLayer(d_hidden, d_model, groups, init, shared_numerator, sign_at_zero, linear_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))
