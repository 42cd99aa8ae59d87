"""ReLU-KAN's fused Triton layer against the float64 reference: output, dx, ds, de, dW, db, at widths that are not
multiples of the tiles, with inputs on the kinks and outside the intervals; fp32, bf16, fp16; the gate on the block.

Without a GPU these run under TRITON_INTERPRET=1 (set in conftest.py) at small sizes; the `gpu` tests run the
compiled kernels on a CUDA device and skip without one."""

import pytest
import torch
from kernel_devices import DEVICES, gpu, rel

from kanbench.harness.correctness import check_against_reference
from kanbench.harness.results import Config
from kanbench.kernels.kan_linear_triton import relu_kan_linear
from kanbench.variants.relu_kan import ReLUKANLayer, edge_inputs


def layer_and_input(rows, d_in, d_out, seed):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layer = ReLUKANLayer(d_in, d_out).double()
    with torch.no_grad():  # move the intervals off their init so every s and e gets its own gradient
        layer.start.add_(0.02 * torch.randn(layer.start.shape, generator=g, dtype=torch.float64))
        layer.end.add_(0.02 * torch.randn(layer.end.shape, generator=g, dtype=torch.float64))
        layer.linear.bias.copy_(torch.randn(d_out, generator=g, dtype=torch.float64))
    x = torch.rand(rows, d_in, generator=g, dtype=torch.float64) * 1.6 - 0.3  # inside and outside [-k/G, 1+k/G]
    edges = torch.tensor(edge_inputs(), dtype=torch.float64)
    x[0, : min(d_in, len(edges))] = edges[:d_in]  # exactly on the kinks
    return layer, x, torch.randn(rows, d_out, generator=g, dtype=torch.float64)


def grads(fn, layer, x, dy):
    params = [layer.start, layer.end, layer.linear.weight, layer.linear.bias]
    for p in params:
        p.grad = None
    x = x.clone().requires_grad_()
    y = fn(x)
    y.backward(dy)
    return [y.detach(), x.grad, *(p.grad.clone() for p in params)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("rows", "d_in", "d_out"), [(37, 13, 19), (5, 40, 33), (64, 8, 16)])
def test_forward_and_every_gradient_match_the_float64_reference(device, rows, d_in, d_out):
    layer, x, dy = layer_and_input(rows, d_in, d_out, rows + d_in)
    truth = grads(layer, layer, x, dy)
    fused = layer.float().to(device)
    got = grads(lambda t: relu_kan_linear(t, fused.start, fused.end, fused.linear.weight, fused.linear.bias, fused.r),
                fused, x.float().to(device), dy.float().to(device))
    names = ["y", "dx", "ds", "de", "dW", "db"]
    errors = {n: rel(g, t) for n, g, t in zip(names, got, truth, strict=True)}
    assert max(errors.values()) < 2e-5, errors


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_the_block_passes_the_gate(device, dtype):
    config = Config("relu_kan", "triton", "block", device, dtype, 24, 16, 40)
    result = check_against_reference(config, config.build())
    assert result.ok, result.message


@pytest.mark.parametrize("device", DEVICES)
def test_backward_is_deterministic(device):
    layer, x, dy = layer_and_input(70, 12, 20, 5)
    fused = layer.float().to(device)

    def run():
        return grads(lambda t: relu_kan_linear(t, fused.start, fused.end, fused.linear.weight, fused.linear.bias,
                                               fused.r), fused, x.float().to(device), dy.float().to(device))

    for a, b in zip(run(), run(), strict=True):
        assert torch.equal(a, b)


@gpu
def test_gpu_block_at_a_transformer_shape_passes_the_gate():
    config = Config("relu_kan", "triton", "block", "cuda", "bf16", 512, 256, 1024)
    result = check_against_reference(config, config.build())
    assert result.ok, result.message
