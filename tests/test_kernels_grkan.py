"""GR-KAN's Triton rational against the float64 reference: forward, dx, da, db; dtypes; determinism.

Without a GPU these run under TRITON_INTERPRET=1 (set in conftest.py) at small sizes; the `gpu` tests run the
compiled kernels on a CUDA device and skip without one."""

import os

import pytest
import torch

from kanbench.harness.correctness import check_against_reference
from kanbench.harness.results import Config
from kanbench.kernels.grkan_rational_triton import rational_backward, rational_triton
from kanbench.registry import create_block, get_variant
from kanbench.variants.grkan import rational

CUDA = torch.cuda.is_available()
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
# the CPU runs are the interpreter twins (every machine without a GPU); a GPU machine runs the compiled kernels
DEVICES = (["cpu"] if INTERPRETED else []) + (["cuda"] if CUDA else [])
gpu = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU; the interpreter twins above cover the same checks")


def coefficients(groups, shared, generator):
    a = torch.randn(1 if shared else groups, 6, dtype=torch.float64, generator=generator) * 0.5
    sign = torch.where(torch.rand(groups, 4, generator=generator) < 0.5, -1.0, 1.0).double()
    b = (0.1 + torch.rand(groups, 4, dtype=torch.float64, generator=generator)) * sign  # away from b = 0
    return a, b


def reference_grads(x, a, b, dy):
    xr, ar, br = (t.detach().double().clone().requires_grad_() for t in (x, a, b))
    y = rational(xr, ar, br)
    y.backward(dy.double())
    return y.detach(), xr.grad, ar.grad, br.grad


def triton_grads(x, a, b, dy, dtype, device):
    xt = x.to(device=device, dtype=dtype).requires_grad_()
    at, bt = (t.to(device=device, dtype=torch.float32).requires_grad_() for t in (a, b))
    y = rational_triton(xt, at, bt)
    y.backward(dy.to(device=device, dtype=dtype))
    return y.detach(), xt.grad, at.grad, bt.grad


def rel(u, v):
    return float((u.detach().double().cpu() - v.cpu()).norm() / v.norm())


CASES = [  # (leading shape, D, groups, shared numerator): D=200 and D=24 are not multiples of the 128-wide block
    ((5, 7), 48, 8, True),
    ((33,), 200, 8, True),
    ((3, 1, 2), 24, 4, False),
    ((67,), 64, 2, False),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("lead", "D", "groups", "shared"), CASES)
def test_forward_and_all_gradients_match_the_float64_reference(device, lead, D, groups, shared):
    g = torch.Generator().manual_seed(D + groups)
    x = torch.randn(*lead, D, dtype=torch.float64, generator=g) * 1.5
    a, b = coefficients(groups, shared, g)
    dy = torch.randn(*lead, D, dtype=torch.float64, generator=g)
    ref = reference_grads(x, a, b, dy)
    got = triton_grads(x, a, b, dy, torch.float32, device)
    for name, u, v in zip(("y", "dx", "da", "db"), got, ref, strict=True):
        assert u.shape == v.shape, name
        assert rel(u, v) < 1e-5, (name, rel(u, v))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.bfloat16, 1e-2), (torch.float16, 2e-3)])
def test_half_precision_inputs_compute_in_fp32_and_return_their_dtype(device, dtype, tolerance):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 96, generator=g).to(dtype).double()  # the reference sees the same rounded input
    a, b = coefficients(8, True, g)
    dy = torch.randn(40, 96, generator=g).to(dtype).double()
    ref = reference_grads(x, a, b, dy)
    got = triton_grads(x, a, b, dy, dtype, device)
    assert got[0].dtype == dtype and got[1].dtype == dtype
    assert got[2].dtype == torch.float32 and got[3].dtype == torch.float32
    for name, u, v in zip(("y", "dx", "da", "db"), got, ref, strict=True):
        assert rel(u, v) < tolerance, (name, rel(u, v))


@pytest.mark.parametrize("device", DEVICES)
def test_coefficient_gradients_are_bit_identical_across_calls(device):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(300, 64, generator=g).to(device)
    a, b = (t.float().to(device) for t in coefficients(8, False, g))
    dy = torch.randn(300, 64, generator=g).to(device)
    first = rational_backward(dy, x, a, b)
    for _ in range(2):
        again = rational_backward(dy, x, a, b)
        for u, v in zip(first, again, strict=True):
            assert torch.equal(u, v)


@pytest.mark.parametrize("device", DEVICES)
def test_output_is_fully_written(device):
    # The wrapper allocates with torch.empty: an unwritten element would be garbage, not the reference's value.
    x = torch.randn(17, 200, device=device)
    a, b = (t.float().to(device) for t in coefficients(8, True, torch.Generator().manual_seed(3)))
    y = rational_triton(x, a, b)
    assert torch.isfinite(y).all()
    assert torch.allclose(y, rational(x, a, b), atol=1e-5)


def test_tensors_off_the_device_are_rejected_before_any_launch():
    with pytest.raises(ValueError, match="tensors must be on a CUDA device"):
        rational_triton(torch.randn(2, 16, device="meta"), torch.zeros(1, 6), torch.ones(8, 4))


@pytest.mark.parametrize("device", DEVICES)
def test_width_not_divisible_by_groups_is_rejected(device):
    with pytest.raises(ValueError, match="width 30 is not divisible by groups=8"):
        rational_triton(torch.randn(2, 30, device=device), torch.zeros(1, 6), torch.ones(8, 4))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("form", ["block", "op"])
def test_triton_impl_passes_the_harness_gate(device, form):
    config = Config("grkan", "triton", form, device, "fp32", 24, 32, 64 if form == "block" else 32)
    from kanbench.harness.workload import build

    module = build(config)
    for m in module.modules():  # non-trivial coefficients: the inits have b = 0 or near it
        if hasattr(m, "denominator"):
            with torch.no_grad():
                m.denominator.add_(0.2)
    result = check_against_reference(config, module)
    assert result.ok, result.message


def test_triton_impl_is_registered_and_says_where_it_runs():
    impl = get_variant("grkan").impl("triton")
    device = "cuda" if CUDA else "cpu"  # without a GPU, conftest runs Triton under the interpreter
    assert impl.why_not(device) is None
    assert "supports dtypes" in impl.why_not(device, torch.float64)
    if CUDA and not INTERPRETED:
        assert "TRITON_INTERPRET=1" in impl.why_not("cpu")
    assert type(create_block("grkan", 16, 32, impl="triton").fc1.rational).__name__ == "TritonGroupRational"


@gpu
def test_compiled_kernels_on_gpu_at_kat_b_size():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(64 * 197, 768, dtype=torch.float64, generator=g)
    a, b = coefficients(8, True, g)
    dy = torch.randn(64 * 197, 768, dtype=torch.float64, generator=g)
    ref = reference_grads(x, a, b, dy)
    got = triton_grads(x, a, b, dy, torch.float32, "cuda")
    for name, u, v in zip(("y", "dx", "da", "db"), got, ref, strict=True):
        assert rel(u, v) < 1e-5, (name, rel(u, v))
