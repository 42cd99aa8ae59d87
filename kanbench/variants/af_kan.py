"""``af_kan``: AF-KAN, ReLU-KAN's bumps generalised to other activations, reduced by global attention to an
MLP-sized layer.

Ta et al., "AF-KAN: Activation Function-Based Kolmogorov-Arnold Networks for Efficient Representation Learning"
(arXiv 2503.06112). Defaults are the paper's best configuration: G = 3, k = 3, activation SiLU, function quad1,
func_norm on, LayerNorm, method global_attn. With trainable ``s_j = (j - k)/G`` (shared by all inputs) and
``e_j = s_j + (k+1)/G``, for input coordinate i and basis j:

    a = act(x_i - s_j),  b = act(e_j - x_i),  F_ij = func(a, b)          (quad1: (a·b)²)
    F <- (F - min F)/(max F - min F)                                    (func_norm)
    w_i = softmax_i( (Linear_{G+k→1}(F))_i / max(τ, 1) ),  τ init √d_in  (global_attn, softmax over the inputs i)
    z_i = Σ_j F_ij · w_i,   y = W_base · act(LayerNorm(z))              (no bias)

``func_norm``: the authors' code L2-normalises the whole feature tensor and then min-max scales it over the whole
batch tensor. The L2 step cancels in the min-max (a positive scale), so kanbench computes the min-max only.
``func_norm='batch'`` (the default, as in the paper) makes a token's output depend on the other tokens in the batch
while training. In eval mode kanbench uses the running extremes instead (an exponential moving average of the
training batches' min and max, momentum 0.1, as BatchNorm's running statistics), so that a prediction does not
depend on which other examples share its batch (the authors evaluate with the test batch's own extremes).
``'sample'`` min-max scales each token's (d_in, G+k) features on their own; ``'none'`` skips it. The benchmarks use
the default, ``'batch'``, in training mode.
Parameters: d_out·d_in + 2·d_in (LayerNorm) + (G+k+1) (attention Linear) + 2·(G+k) (s, e) + 1 (τ).

With few inputs the LayerNorm is a bottleneck: it removes z's mean and scale, so the layer's output lies on a
(d_in − 2)-dimensional sphere (before its affine map). With d_in = 2 it is (t, −t) with t = d/√(d² + 4ε),
d = z_0 − z_1, ε = 1e-5: a single number, ±1 wherever |d| ≫ 0.006. An AF-KAN network on 2 to 4 inputs (the
kan-fit tasks) therefore sees its inputs through one number (2 or 3 inputs) or two (4) after its first layer.
Measured with kanbench's training (kan-fit, d_in → 119 → 1, 3000 steps, lr 1e-2, inputs min-max onto [0, 1],
seed 0): test RMSE 0.996 on exp_sin_sq (targets' std 1.33), 0.126 on product, 0.131 on norm_3d; the same
networks with the first layer's LayerNorm removed reach 0.109, 0.008 and 0.007. The variant keeps the paper's
configuration (its authors apply it to images, d_in = 784); its kan-fit results measure this property, not a
training failure.

In fp32 two of its gradients are set by rounding as much as by the math. With ``func_norm='batch'`` the gradient
of each batch extreme sums over every feature of the layer and lands on the one element that is the extreme; F is
flat at a basis' peak, so dozens of features lie within a few fp32 ulps of the maximum and each implementation's
rounding picks the winner, whose basis then receives that whole gradient: the correctness gate checks this variant
with an upstream gradient blind to the extremes (:func:`extremes_blind_upstream`). And τ's gradient,
Σ_i ∂L/∂l_i · l_i / T, cancels (Σ_i ∂L/∂l_i = 0 under the softmax, as the attention bias's gradient is exactly 0):
the forward takes each row's mean score off before dividing by T, the same function and the same gradients, so
that the terms of that sum carry no common offset to cancel in rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kanbench.costs import ELEMENTWISE, LAYER_NORM, REDUCTION, SOFTMAX, Cost
from kanbench.preparation import MINMAX_UNIT, STANDARDIZE
from kanbench.variants.precision import upcast
from kanbench.variants.two_layer import register_layer_variant

ACTIVATIONS = {"silu": F.silu, "relu": F.relu, "gelu": F.gelu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
               "softplus": F.softplus}


def _quad1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ab = a * b
    return ab * ab


def _cubic2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ab = a * b
    return ab * ab * ab


# func(a, b) and its elementwise FLOPs per feature
FUNCS = {
    "quad1": (_quad1, 2),
    "quad2": (lambda a, b: a * b + a * a + b * b, 5),
    "sum": (lambda a, b: a + b, 1),
    "prod": (lambda a, b: a * b, 1),
    "sum_prod": (lambda a, b: a + b + a * b, 3),
    "cubic1": (lambda a, b: (a + b) * (a * a + b * b), 5),
    "cubic2": (_cubic2, 3),
}
NORMS = ("batch", "sample", "none")
RUNNING_MOMENTUM = 0.1
DEFAULTS = {"grid_size": 3, "k": 3, "activation": "silu", "func": "quad1", "func_norm": "batch"}


def validate(d_in: int, d_out: int, grid_size: int = 3, k: int = 3, activation: str = "silu", func: str = "quad1",
             func_norm: str = "batch") -> None:
    if not isinstance(grid_size, int) or grid_size < 1:
        raise ValueError(f"af_kan: grid_size must be an integer >= 1, got {grid_size!r}.")
    if not isinstance(k, int) or k < 0:
        raise ValueError(f"af_kan: k must be an integer >= 0, got {k!r}.")
    for name, value, allowed in (("activation", activation, ACTIVATIONS), ("func", func, FUNCS),
                                 ("func_norm", func_norm, NORMS)):
        if value not in allowed:
            raise ValueError(f"af_kan: {name} must be one of {', '.join(allowed)}, got {value!r}.")


class AFKANLayer(nn.Module):
    """One AF-KAN layer with the global-attention reduction (see the module docstring)."""

    def __init__(self, d_in: int, d_out: int, grid_size: int = 3, k: int = 3, activation: str = "silu",
                 func: str = "quad1", func_norm: str = "batch") -> None:
        super().__init__()
        self.d_in, self.d_out = d_in, d_out
        self.activation, self.func_name, self.func_norm = activation, func, func_norm
        self.act, self.func = ACTIVATIONS[activation], FUNCS[func][0]
        start = torch.arange(-k, grid_size, dtype=torch.float32) / grid_size
        self.start = nn.Parameter(start)  # s: (G+k,), shared by all inputs
        self.end = nn.Parameter(start + (k + 1) / grid_size)  # e
        self.temperature = nn.Parameter(torch.tensor(math.sqrt(d_in)))
        self.attention = nn.Linear(grid_size + k, 1)
        self.norm = nn.LayerNorm(d_in)
        self.base_weight = nn.Parameter(torch.empty(d_out, d_in))
        nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5))
        # (min, max) of F over the training batches; NaN until the first one (eval then uses the batch's own)
        self.register_buffer("running_extremes", torch.full((2,), float("nan")))

    def batch_extremes(self, batch: torch.Tensor) -> torch.Tensor:
        """The (min, max) that ``func_norm='batch'`` scales by, from this batch's ``batch`` = (min F, max F): the
        batch's own while training (and the running extremes updated), the running ones in eval mode."""
        running = self.running_extremes
        if self.training:
            with torch.no_grad():  # tensor ops only: no host sync, and nothing for torch.compile to guard on
                seen = batch.detach().to(running.dtype)
                running.copy_(torch.where(running.isnan(), seen, running.lerp(seen, RUNNING_MOMENTUM)))
            return batch
        return torch.where(running.isnan(), batch, running.to(batch.dtype))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, d_in) → (N, d_in, G+k) normalised features F, in x's dtype (fp32 for 16-bit parameters: see
        :meth:`hidden`)."""
        start, end = self.start.to(x.dtype), self.end.to(x.dtype)
        x = x.unsqueeze(-1)
        feats = self.func(self.act(x - start), self.act(end - x))
        if self.func_norm == "batch":
            lo, hi = self.batch_extremes(torch.stack([feats.amin(), feats.amax()]))
            feats = (feats - lo) / (hi - lo)
        elif self.func_norm == "sample":
            lo, hi = feats.amin(dim=(1, 2), keepdim=True), feats.amax(dim=(1, 2), keepdim=True)
            feats = (feats - lo) / (hi - lo)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.d_in)
        return F.linear(self.hidden(x), self.base_weight).reshape(*lead, self.d_out)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """(N, d_in) → h = act(LayerNorm(z)), (N, d_in) in x's dtype, for the output matmul ``h·Wᵀ``. Evaluated in
        fp32 for 16-bit x (:mod:`kanbench.variants.precision`), as the Triton kernels do: the min-max, softmax and
        LayerNorm each divide by a difference or a sum that bf16 would round first."""
        out_dtype = x.dtype
        x, temperature = upcast(x, self.temperature)
        attention_weight, attention_bias, norm_weight, norm_bias = upcast(
            self.attention.weight, self.attention.bias, self.norm.weight, self.norm.bias)
        feats = self.features(x)
        scores = F.linear(feats, attention_weight, attention_bias).squeeze(-1)
        # softmax(scores / T) with each row's mean score taken off first: the same function (a per-row constant
        # does not move a softmax) and, exactly, the same gradients, but τ's gradient Σ_i ∂L/∂l_i · l_i / T then
        # sums terms without the row's common offset, which Σ_i ∂L/∂l_i = 0 would otherwise cancel in rounding
        shift = scores.detach().mean(dim=-1, keepdim=True)
        logits = (scores - shift) / temperature.clamp(min=1.0)  # (N, d_in)
        weights = torch.softmax(logits, dim=-1)  # over the input coordinates i
        z = (feats * weights.unsqueeze(-1)).sum(dim=-1)
        normed = F.layer_norm(z, (self.d_in,), norm_weight, norm_bias, self.norm.eps)
        return self.act(normed).to(out_dtype)


def layer_cost(d_in: int, d_out: int, grid_size: int = 3, k: int = 3, activation: str = "silu",
               func: str = "quad1", func_norm: str = "batch") -> Cost:
    n = grid_size + k
    act = ELEMENTWISE[activation]
    features = d_in * n * (2 * ELEMENTWISE["sub"] + 2 * act + FUNCS[func][1])
    # min, max, subtract, divide per feature (and the per-token range for 'sample')
    norm = 0 if func_norm == "none" else d_in * n * (REDUCTION["amin"] + REDUCTION["amax"] + 2)
    norm += 1 if func_norm == "sample" else 0
    # bias, the row-mean shift, /τ, softmax
    attention = (d_in * (1 + REDUCTION["mean"] + ELEMENTWISE["sub"] + 1 + SOFTMAX)
                 + d_in * n * (ELEMENTWISE["mul"] + REDUCTION["sum"]))
    output = d_in * (LAYER_NORM + act)
    params = d_out * d_in + 2 * d_in + (n + 1) + 2 * n + 1
    return Cost(params, 2 * d_in * n + 2 * d_in * d_out, features + norm + attention + output)


def _output_with_extreme_moved(module: nn.Module, x: torch.Tensor, layer: AFKANLayer, slot: int,
                               sign: float) -> tuple[torch.Tensor, float]:
    """``module(x)`` with ``layer``'s batch extreme ``slot`` (0: lo, 1: hi) moved by ``sign`` × 1e-6 of its range,
    and that step."""
    own, steps = layer.batch_extremes, []

    def moved(batch: torch.Tensor) -> torch.Tensor:
        extremes = own(batch).clone()
        steps.append(1e-6 * float(extremes[1] - extremes[0]))
        extremes[slot] += sign * steps[-1]
        return extremes

    layer.batch_extremes = moved  # the instance's own, for this forward only
    try:
        return module(x), steps[-1]
    finally:
        del layer.batch_extremes


def extremes_blind_upstream(module: nn.Module, x: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    """The correctness gate's upstream gradient made blind to the batch extremes (``gate_upstream``).

    With ``func_norm='batch'`` each extreme's gradient, ∂L/∂hi = ⟨g, ∂y/∂hi⟩, sums over every feature of the layer
    and lands on the one element that is the extreme; near a basis' flat peak the winner among dozens of features
    within a few fp32 ulps is decided by each implementation's rounding, and the winner's basis takes the whole
    sum. So, for ``module`` (the float64 reference, training mode) and input ``x``, the columns v = ∂y/∂lo and
    ∂y/∂hi of every such layer are taken by central differences (each extreme moved by ±1e-6 of its layer's
    range), and ``upstream`` loses its least-squares component along them: ⟨g', v⟩ = 0, so no gradient reaches any
    extreme and every other gradient is the same whichever element won. What this leaves unchecked at the measured
    shape, the extremes' own gradient, the kernels' unit tests check at sizes without near-ties."""
    layers = [m for m in module.modules() if isinstance(m, AFKANLayer) and m.func_norm == "batch" and m.training]
    if not layers:
        return upstream
    buffers = [layer.running_extremes.clone() for layer in layers]  # the probing forwards must leave no trace
    columns = []
    with torch.no_grad():
        for layer in layers:
            for slot in (0, 1):  # lo, hi
                (up, step), (down, _) = (_output_with_extreme_moved(module, x, layer, slot, sign)
                                         for sign in (1.0, -1.0))
                columns.append(((up - down) / (2 * step)).reshape(-1))
    for layer, saved in zip(layers, buffers, strict=True):
        layer.running_extremes.copy_(saved)
    v = torch.stack(columns, dim=1)
    along = v @ torch.linalg.lstsq(v, upstream.reshape(-1, 1).to(v.dtype)).solution
    return upstream - along.reshape(upstream.shape).to(upstream.dtype)


def edge_inputs(grid_size: int = 3, k: int = 3, **_: object) -> list[float]:
    """The interval ends s_j and e_j and points outside them."""
    ends = [(j - k) / grid_size for j in range(grid_size + 2 * k + 2)]
    return ends + [ends[0] - 1.0, ends[-1] + 1.0]


AFKANBlock = register_layer_variant(
    "af_kan",
    layer=AFKANLayer,
    layer_cost=layer_cost,
    description="AF-KAN: activation bumps, global attention over inputs, MLP-sized",
    paper="Ta et al. 2025, AF-KAN (arXiv 2503.06112)",
    defaults=DEFAULTS,
    validate=validate,
    edge_inputs=edge_inputs,
    gate_upstream=extremes_blind_upstream,
    # ReLU-KAN's bumps, generalised: intervals over [-k/G, 1 + k/G], inputs scaled to [0, 1] as the authors' images
    preparations=(MINMAX_UNIT, STANDARDIZE),
)
