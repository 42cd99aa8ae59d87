"""B-spline KAN's fused Triton layer (closed-form bases inside the matmuls) against the float64 reference: output,
dx and every parameter gradient at widths that are not tile multiples, inputs on every knot and outside the grid,
spline orders 1-3; fp32, bf16, fp16 through the gate; a bit-identical backward.

Without a GPU these run under TRITON_INTERPRET=1 (set in conftest.py) at small sizes; the `gpu` test runs the
compiled kernels on a CUDA device and skips without one."""

import pytest
import torch
from kernel_devices import DEVICES, assert_bit_identical_reruns, assert_matches_float64, gpu

from kanbench.harness.correctness import check_against_reference
from kanbench.harness.results import Config
from kanbench.registry import create_layer
from kanbench.variants.bspline_kan import edge_inputs


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("rows", "d_in", "d_out", "order", "grid_size"),
                         [(37, 13, 19, 3, 5), (5, 40, 33, 2, 4), (64, 8, 16, 1, 3), (20, 6, 7, 3, 8)])
def test_forward_and_every_gradient_match_the_float64_reference(device, rows, d_in, d_out, order, grid_size):
    hp = {"spline_order": order, "grid_size": grid_size}
    torch.manual_seed(rows)
    reference = create_layer("bspline_kan", d_in, d_out, **hp).double()
    fused = create_layer("bspline_kan", d_in, d_out, impl="triton", **hp)
    fused.load_state_dict(reference.state_dict())
    g = torch.Generator().manual_seed(d_in)
    x = torch.randn(rows, d_in, generator=g, dtype=torch.float64) * 1.2  # inside and outside the grid
    knots = torch.tensor(edge_inputs(**hp), dtype=torch.float64)
    # exactly on every knot; order 1 has a kink there, where either one-sided derivative is right: beside it
    x.view(-1)[: min(x.numel(), len(knots))] = knots[: x.numel()] + (1e-3 if order == 1 else 0.0)
    x = x.float().double()  # the kernel's input exactly: near a knot, rounding could cross it (order 1's kink)
    dy = torch.randn(rows, d_out, generator=g, dtype=torch.float64)
    assert_matches_float64(reference, fused, x, dy, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_the_block_passes_the_gate(device, dtype):
    config = Config("bspline_kan", "triton", "block", device, dtype, 24, 16, 40)
    result = check_against_reference(config, config.build())
    assert result.ok, result.message


@pytest.mark.parametrize("device", DEVICES)
def test_the_knots_stay_fp32_and_uniform_in_a_16_bit_module(device):
    layer = create_layer("bspline_kan", 4, 4, impl="triton").to(device=device, dtype=torch.bfloat16)
    assert layer.grid.dtype == torch.float32 and layer.base_weight.dtype == torch.bfloat16
    t0, h = layer.knots()
    assert abs(t0 + 2.2) < 1e-6 and abs(h - 0.4) < 1e-6


@pytest.mark.parametrize("device", DEVICES)
def test_backward_is_deterministic(device):
    torch.manual_seed(1)
    layer = create_layer("bspline_kan", 12, 20, impl="triton").to(device)
    x, dy = torch.randn(70, 12, device=device), torch.randn(70, 20, device=device)
    assert_bit_identical_reruns(layer, x, dy)


@gpu
def test_gpu_block_at_a_transformer_shape_passes_the_gate():
    config = Config("bspline_kan", "triton", "block", "cuda", "bf16", 512, 256, 1024)
    result = check_against_reference(config, config.build())
    assert result.ok, result.message
