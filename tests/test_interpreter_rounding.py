"""Triton's interpreter converts fp32 → bf16 as the GPU does, round to nearest, ties to even (kanbench patches its
truncation: kernels/interpreter_rounding.py), so that the bf16 interpreter twins check the arithmetic a GPU runs.
On a GPU machine the same kernel test runs on CUDA and holds the hardware's conversion to torch's."""

import numpy as np
import pytest
import torch
from kernel_devices import DEVICES

from kanbench.kernels.interpreter_rounding import rne_bf16_bits
from kanbench.kernels.launch import check_launchable

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")


def awkward_values() -> torch.Tensor:
    """fp32 values over the whole range: random magnitudes 1e-40 .. 1e38, exact ties between two bf16 neighbours
    (half of them with an odd, half with an even lower neighbour), signed zeros, infinities, NaN, the largest
    finite values (some round up to inf), subnormals."""
    g = torch.Generator().manual_seed(0)
    wide = torch.randn(2048, generator=g) * 10.0 ** torch.empty(2048).uniform_(-40, 38, generator=g)
    lower = torch.randn(1024, generator=g).bfloat16().float()
    ulp = 2.0 ** (torch.floor(torch.log2(lower.abs())) - 7)
    ties = lower + torch.sign(lower) * ulp / 2
    finfo = torch.finfo(torch.float32)
    specials = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan"), finfo.max, -finfo.max,
                             3.3961e38, 3.3895e38, finfo.tiny, 1e-40, -1e-40, 1.4e-45, 1.9990234375, 0.5])
    return torch.cat([wide, ties, specials]).float()


def same_bits(got: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """Bit-equal bf16 values, any NaN equal to any NaN."""
    both_nan = torch.isnan(got.float()) & torch.isnan(want.float())
    return (got.view(torch.int16) == want.view(torch.int16)) | both_nan


def test_the_bit_rounding_is_torchs_round_to_nearest_even():
    values = awkward_values()
    got = torch.from_numpy(rne_bf16_bits(values.numpy()).view(np.int16)).view(torch.bfloat16)
    assert bool(same_bits(got, values.bfloat16()).all())


@triton.jit
def _convert(x_ptr, cast_ptr, stored_ptr, widened_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.arange(0, BLOCK)
    ok = offsets < n
    x = tl.load(x_ptr + offsets, mask=ok)
    tl.store(cast_ptr + offsets, x.to(tl.bfloat16), mask=ok)  # an explicit cast
    tl.store(stored_ptr + offsets, x, mask=ok)  # the implicit cast of a store into a bf16 tensor
    back = tl.load(cast_ptr + offsets, mask=ok)
    tl.store(widened_ptr + offsets, back.to(tl.float32), mask=ok)


@pytest.mark.parametrize("device", DEVICES)
def test_a_kernels_bf16_conversions_are_torchs(device):
    values = awkward_values().to(device)
    check_launchable(values, "test")  # what every kanbench kernel wrapper does first (it patches the interpreter)
    cast = torch.empty(values.shape, dtype=torch.bfloat16, device=device)
    stored, widened = torch.empty_like(cast), torch.empty_like(values)
    _convert[(1,)](values, cast, stored, widened, values.numel(), BLOCK=triton.next_power_of_2(values.numel()))
    want = values.bfloat16()
    assert bool(same_bits(cast, want).all()), "x.to(tl.bfloat16) is not round to nearest, ties to even"
    assert bool(same_bits(stored, want).all()), "a store into a bf16 tensor is not round to nearest"
    assert torch.equal(torch.isnan(widened), torch.isnan(want.float()))
    finite = ~torch.isnan(widened)
    assert torch.equal(widened[finite], want.float()[finite]), "bf16 → fp32 is not exact"
