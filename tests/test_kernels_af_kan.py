"""AF-KAN's Triton kernels against the float64 reference: output and every parameter's gradient, for every
activation and feature function and the three min-max modes, rows crossing chunk boundaries; ties at the batch's
min and max; what backward saves; fp32, bf16, fp16 through the gate.

Without a GPU these run under TRITON_INTERPRET=1 (set in conftest.py) at small sizes (8-column chunks there, so
every row spans several); the `gpu` tests run the compiled kernels on a CUDA device and skip without one."""

import pytest
import torch
from kernel_devices import DEVICES, gpu, outputs_and_grads

from kanbench.harness.correctness import check_against_reference
from kanbench.harness.results import Config
from kanbench.kernels.af_kan import FusedAFKANLayer
from kanbench.variants.af_kan import AFKANLayer

# every activation and every func at least once, each min-max mode at least twice
CASES = [("batch", "silu", "quad1"), ("sample", "relu", "quad2"), ("none", "gelu", "cubic1"),
         ("batch", "tanh", "cubic2"), ("sample", "softplus", "sum_prod"), ("batch", "sigmoid", "prod"),
         ("none", "silu", "sum")]


def reference_layer(d_in, d_out, seed, **hparams):
    """A float64 layer moved off its init, so every parameter has a gradient of its own."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layer = AFKANLayer(d_in, d_out, **hparams).double()
    with torch.no_grad():
        for p in (layer.start, layer.end):
            p.add_(0.05 * torch.randn(p.shape, generator=g, dtype=torch.float64))
        layer.attention.weight.mul_(5.0)
        layer.norm.weight.add_(0.3 * torch.randn(d_in, generator=g, dtype=torch.float64))
        layer.norm.bias.add_(0.3 * torch.randn(d_in, generator=g, dtype=torch.float64))
        layer.temperature.fill_(1.7)  # above the clamp at 1, so τ has a gradient
    return layer


def fused_copy(layer, device):
    fused = AFKANLayer(layer.d_in, layer.d_out, activation=layer.activation, func=layer.func_name,
                       func_norm=layer.func_norm)
    fused.load_state_dict({k: v.float() for k, v in layer.state_dict().items()})
    fused.__class__ = FusedAFKANLayer
    return fused.to(device)


def errors(got, truth):
    """Relative error per tensor; dβ is exactly 0 in exact arithmetic (softmax ignores a shift of every logit),
    so errors are taken against at least a thousandth of the largest gradient's norm."""
    floor = 1e-3 * max(float(t.norm()) for name, t in truth.items() if name != "y")
    return {name: float((got[name].double().cpu() - t).norm()) / max(float(t.norm()), floor)
            for name, t in truth.items()}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("func_norm", "activation", "func"), CASES)
@pytest.mark.parametrize(("rows", "d_in", "d_out"), [(11, 13, 9), (4, 8, 5)])
def test_output_and_every_gradient_match_the_float64_reference(device, func_norm, activation, func, rows, d_in,
                                                               d_out):
    layer = reference_layer(d_in, d_out, rows + d_in, activation=activation, func=func, func_norm=func_norm)
    g = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, d_in, generator=g, dtype=torch.float64)
    dy = torch.randn(rows, d_out, generator=g, dtype=torch.float64)
    truth = outputs_and_grads(layer, x, dy)
    got = outputs_and_grads(fused_copy(layer, device), x.float().to(device), dy.float().to(device))
    err = errors(got, truth)
    assert max(err.values()) < 3e-4, err


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("func_norm", ["batch", "sample"])
def test_the_min_and_max_share_their_gradient_among_equal_elements(device, func_norm):
    """Ties at the extremes: torch's amin/amax split the gradient evenly over equal elements. Rows repeated (batch
    mode) or columns repeated within each row (sample mode) make every extreme a tie; the error is read per element
    of dx, where a wrong share shows."""
    layer = reference_layer(6, 4, 3, func_norm=func_norm)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 6, generator=g, dtype=torch.float64)
    if func_norm == "batch":
        x = torch.cat([x, x])
    else:
        x[:, 3:] = x[:, :3]
    dy = torch.randn(x.shape[0], 4, generator=g, dtype=torch.float64)
    truth = outputs_and_grads(layer, x, dy)
    got = outputs_and_grads(fused_copy(layer, device), x.float().to(device), dy.float().to(device))
    worst = float((got["dx"].double().cpu() - truth["dx"]).abs().max() / truth["dx"].abs().max())
    assert worst < 1e-4, worst
    err = errors(got, truth)
    assert max(err.values()) < 3e-4, err


@pytest.mark.parametrize("device", DEVICES)
def test_backward_saves_no_feature_tensor(device):
    rows, d_in, n = 16, 12, 6
    layer = fused_copy(reference_layer(d_in, 8, 1), device)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        layer(torch.randn(rows, d_in, device=device, requires_grad=True)).sum()
    assert saved and max(saved) < rows * d_in * n, saved
    assert sum(saved) <= 3 * rows * d_in + layer.base_weight.numel() + 8 * rows + 4 * d_in + 64, saved


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_the_block_passes_the_gate(device, dtype):
    config = Config("af_kan", "triton", "block", device, dtype, 8, 8, 16)  # a 16-wide row is two chunks
    result = check_against_reference(config, config.build())
    assert result.ok, result.message


@pytest.mark.parametrize("device", DEVICES)
def test_backward_is_deterministic(device):
    layer = reference_layer(12, 5, 2)
    x, dy = torch.randn(10, 12), torch.randn(10, 5)

    def run():
        return outputs_and_grads(fused_copy(layer, device), x.to(device), dy.to(device))

    first, second = run(), run()
    for name in first:
        assert torch.equal(first[name], second[name]), name


@gpu
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_gpu_block_at_a_transformer_shape_passes_the_gate(dtype):
    config = Config("af_kan", "triton", "block", "cuda", dtype, 512, 256, 1024)
    result = check_against_reference(config, config.build())
    assert result.ok, result.message


@pytest.mark.parametrize("device", DEVICES)
def test_eval_mode_scales_by_the_running_extremes_as_the_reference_does(device):
    """Training-mode forwards update both layers' running extremes alike; in eval mode both scale by them, so a
    row's output does not depend on the rest of its batch, and the gradients still match the reference's."""
    layer = reference_layer(13, 9, 3)
    fused = fused_copy(layer, device)
    g = torch.Generator().manual_seed(5)
    for _ in range(3):
        x = torch.randn(7, 13, generator=g, dtype=torch.float64)
        layer(x)
        fused(x.float().to(device))
    assert torch.allclose(fused.running_extremes.double().cpu(), layer.running_extremes, rtol=1e-5, atol=1e-6)
    layer.eval()
    fused.eval()
    x = torch.randn(6, 13, generator=g, dtype=torch.float64)
    alone = torch.cat([layer(x[i:i + 1]) for i in range(6)])
    assert torch.allclose(layer(x), alone, rtol=1e-12, atol=1e-12)  # batch composition no longer matters
    dy = torch.randn(6, 9, generator=g, dtype=torch.float64)
    truth = outputs_and_grads(layer, x, dy)
    got = outputs_and_grads(fused, x.float().to(device), dy.float().to(device))
    assert max(errors(got, truth).values()) < 3e-4, errors(got, truth)
