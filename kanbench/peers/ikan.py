"""The ``ikan`` impls (pip ``ikan``, MIT), a collection of KAN layers: of ``bspline_kan``, its ``KANLinear``; of
``grkan``, its Triton group-rational kernel (``RationalTriton1DGroup``, the Kolmogorov-Arnold Transformer's); of
``cheby_kan``, ``fourier_kan`` and ``wav_kan`` (kanbench's references of ikan's formulations), its
``ChebyKANLinear``, ``FourierKANLinear`` and ``WaveletKANLinear`` (Mexican hat), whose parameters the references
name as ikan does (the mapping is the identity).

- ``KANLinear`` is efficient-kan's layer, parameters named as the reference's (``base_weight``, ``spline_weight``,
  ``spline_scaler``, the ``grid`` buffer): the mapping is the identity, any spline order.
- ``RationalTriton1DGroup.apply(x, a, b, groups)`` computes GR-KAN's ``F(x) = P(x) / (1 + Σ_j |b_j|·|x|^{j+1})``
  with a numerator row per group and sign(0) = +1 in its gradients, as the reference at ``sign_at_zero=1``; the
  reference's shared numerator is repeated per group (so its gradient is summed over the groups, as ikan's own
  ``KAT_Group`` does). ikan's ``KAT_Group`` reads its initial coefficients from an ``init.json`` its wheel lacks;
  the adapter passes the reference's coefficients instead. Its backward accumulates the coefficient gradients with
  one atomic add per element: its speed and its run-to-run bits are ikan's.

ikan's ``__init__`` imports its ``GroupKAN``, hence timm, hence torchvision; with a CPU build of torch the PyPI
torchvision (a CUDA build) fails to load. The modules used here need neither, so they are loaded from the
installed package's files without running ``ikan/__init__.py``.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from kanbench.kernels.grkan import with_rational
from kanbench.kernels.launch import swapped, triton_runs, triton_unavailable
from kanbench.peers import missing
from kanbench.peers.bspline_peer import PeerBSplineLayer
from kanbench.peers.call import PeerCall
from kanbench.registry import Impl, register_impl
from kanbench.variants.bspline_kan import BSplineKANBlock, BSplineKANLayer
from kanbench.variants.cheby_kan import ChebyKANBlock, ChebyKANLayer
from kanbench.variants.fourier_kan import FourierKANBlock, FourierKANLayer
from kanbench.variants.grkan import GroupRational
from kanbench.variants.wav_kan import WavKANBlock, WavKANLayer


@functools.cache
def ikan_module(name: str) -> ModuleType:
    """``ikan/<name>.py`` of the installed package, loaded without the package's ``__init__`` (see above)."""
    spec = importlib.util.find_spec("ikan")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"needs the 'ikan' package: {missing('ikan', 'ikan')('cpu')}")
    path = Path(spec.submodule_search_locations[0]) / f"{name}.py"
    qualified = f"kanbench.peers._ikan_{name}"
    module_spec = importlib.util.spec_from_file_location(qualified, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[qualified] = module  # Triton's jit reads its kernels' source through the module
    module_spec.loader.exec_module(module)
    return module


class IkanKANLinear(PeerBSplineLayer):
    """ikan's ``KANLinear``, with the reference's parameters as they are."""

    package = "ikan"
    cubic_only = False

    def build_peer(self) -> nn.Module:
        return ikan_module("KAN").KANLinear(self.d_in, self.d_out, grid_size=self.grid_size,
                                            spline_order=self.spline_order, grid_range=list(self.grid_range))

class IkanChebyKANLinear(PeerCall, ChebyKANLayer):
    """ikan's ``ChebyKANLinear``: ``base_weight``, ``cheby_coeffs``, ``bias``, as the reference."""

    package = "ikan"

    def build_peer(self) -> nn.Module:
        return ikan_module("ChebyKAN").ChebyKANLinear(self.d_in, self.d_out, degree=self.degree)

class IkanFourierKANLinear(PeerCall, FourierKANLayer):
    """ikan's ``FourierKANLinear``: ``base_weight``, ``fourier_coeffs`` (2, out, in, F), ``bias``, as the
    reference."""

    package = "ikan"

    def build_peer(self) -> nn.Module:
        return ikan_module("FourierKAN").FourierKANLinear(self.d_in, self.d_out, num_frequencies=self.frequencies)

class IkanWaveletKANLinear(PeerCall, WavKANLayer):
    """ikan's ``WaveletKANLinear`` with the Mexican hat: ``base_weight``, ``wavelet_weights``, ``scale``,
    ``translation``, ``bias``, as the reference."""

    package = "ikan"

    def build_peer(self) -> nn.Module:
        return ikan_module("WaveletKAN").WaveletKANLinear(self.d_in, self.d_out, wavelet_type="mexican_hat")

class IkanGroupRational(GroupRational):
    """:class:`GroupRational` computed by ikan's Triton forward and backward kernels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sign_at_zero != 1:
            raise ValueError(f"ikan's rational kernel takes sign(0) = +1: build grkan with sign_at_zero=1, got "
                             f"{self.sign_at_zero}.")
        if x.device.type == "cpu" and x.dtype == torch.bfloat16:
            raise RuntimeError("ikan's rational kernel computes in bf16, which Triton's CPU interpreter cannot (it "
                               "runs bf16 arithmetic on the bit patterns, and its output is garbage): its bf16 "
                               "numbers need a CUDA GPU.")
        groups = self.denominator.shape[0]
        numerator = self.numerator.repeat(groups // self.numerator.shape[0], 1)
        rational = ikan_module("rational_triton").RationalTriton1DGroup
        return rational.apply(x.contiguous(), numerator, self.denominator, groups)


def ikan_triton_unavailable(device: str) -> str | None:
    return missing("ikan", "ikan")(device) or triton_unavailable(device)


register_impl("bspline_kan", Impl(
    "ikan", block=swapped(BSplineKANBlock, BSplineKANLayer, IkanKANLinear),
    layer=swapped(BSplineKANLayer, BSplineKANLayer, IkanKANLinear), package="ikan",
    unavailable=missing("ikan", "ikan"),
    description="ikan's KANLinear (pip ikan): efficient-kan's layer as packaged, the reference's weights as they "
                "are (exactly its function)",
))
for variant, block, layer, peer in (("cheby_kan", ChebyKANBlock, ChebyKANLayer, IkanChebyKANLinear),
                                    ("fourier_kan", FourierKANBlock, FourierKANLayer, IkanFourierKANLinear),
                                    ("wav_kan", WavKANBlock, WavKANLayer, IkanWaveletKANLinear)):
    register_impl(variant, Impl(
        "ikan", block=swapped(block, layer, peer), layer=swapped(layer, layer, peer), package="ikan",
        unavailable=missing("ikan", "ikan"),
        description=f"ikan's {peer.__name__.removeprefix('Ikan')} (pip ikan), the formulation the reference "
                    "follows, its parameters as they are",
    ))
register_impl("grkan", Impl(
    "ikan", **with_rational(IkanGroupRational), **{**triton_runs(), "unavailable": ikan_triton_unavailable},
    package="ikan",
    description="ikan's Triton group-rational kernel (pip ikan): elementwise forward, backward with atomic "
                "coefficient sums, the reference's coefficients passed in",
))
