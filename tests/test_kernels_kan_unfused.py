"""The KAN layers' ``triton_unfused`` impl (kernels/kan_linear_unfused.py: a Triton kernel writes the feature
tensor, torch multiplies, the dx kernel reads G = dY·W) against the float64 reference for every family: output,
dx and every parameter gradient (ReLU-KAN's interval ends included) at widths that are not tile multiples; the
gate on the block in fp32, bf16 and fp16; and the same numbers as the fused ``triton`` impl.

Without a GPU these run under TRITON_INTERPRET=1 (set in conftest.py) at small sizes; the `gpu` test runs the
compiled kernels and cuBLAS on a CUDA device and skips without one."""

import pytest
import torch
from kernel_devices import DEVICES, assert_matches_float64, gpu, outputs_and_grads, rel

from kanbench.harness.correctness import check_against_reference
from kanbench.harness.results import Config
from kanbench.registry import create_layer

LAYERS = [("relu_kan", {}), ("bspline_kan", {}), ("cheby_kan", {"degree": 3}), ("fourier_kan", {"frequencies": 2})]


def reference_and_input(variant, hp, rows, d_in, d_out):
    torch.manual_seed(rows + d_in)
    reference = create_layer(variant, d_in, d_out, **hp).double()
    with torch.no_grad():  # off the init: ReLU-KAN's intervals each get their own gradient, biases are not zero
        for name, p in reference.named_parameters():
            p.add_(0.02 * torch.randn_like(p) if name in ("start", "end") else 0.1 * torch.randn_like(p))
    g = torch.Generator().manual_seed(d_out)
    x = (torch.rand(rows, d_in, generator=g, dtype=torch.float64) * 2.4 - 1.2).float().double()
    return reference, x, torch.randn(rows, d_out, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("variant", "hp"), LAYERS)
@pytest.mark.parametrize(("rows", "d_in", "d_out"), [(37, 13, 19), (70, 40, 33)])
def test_forward_and_every_gradient_match_the_float64_reference(device, variant, hp, rows, d_in, d_out):
    reference, x, dy = reference_and_input(variant, hp, rows, d_in, d_out)
    unfused = create_layer(variant, d_in, d_out, impl="triton_unfused", **hp)
    unfused.load_state_dict(reference.state_dict())
    assert_matches_float64(reference, unfused, x, dy, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("variant", "hp"), LAYERS)
def test_it_computes_what_the_fused_impl_computes(device, variant, hp):
    reference, x, dy = reference_and_input(variant, hp, 37, 13, 19)
    results = []
    for impl in ("triton", "triton_unfused"):
        layer = create_layer(variant, 13, 19, impl=impl, **hp)
        layer.load_state_dict(reference.state_dict())
        results.append(outputs_and_grads(layer.to(device), x.float().to(device), dy.float().to(device)))
    fused, unfused = results
    assert set(fused) == set(unfused)
    for name in fused:  # the same math in another summation order: fp32 rounding apart
        assert rel(unfused[name], fused[name]) < 1e-5, name


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("variant", ["relu_kan", "bspline_kan", "cheby_kan", "fourier_kan"])
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_the_block_passes_the_gate(device, variant, dtype):
    config = Config(variant, "triton_unfused", "block", device, dtype, 24, 16, 40)
    result = check_against_reference(config, config.build())
    assert result.ok, result.message


@gpu
@pytest.mark.parametrize("variant", ["relu_kan", "bspline_kan", "cheby_kan", "fourier_kan"])
def test_gpu_block_at_a_transformer_shape_passes_the_gate(variant):
    config = Config(variant, "triton_unfused", "block", "cuda", "bf16", 512, 256, 1024)
    result = check_against_reference(config, config.build())
    assert result.ok, result.message
