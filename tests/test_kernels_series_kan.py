"""The Chebyshev and Fourier KANs' fused Triton layers (kernels/kan_linear_triton.py's CHEBY and FOURIER families)
against the float64 reference: output, dx and every parameter gradient at widths that are not tile multiples, with
Chebyshev inputs exactly on the clamp's corners (±1, where the installed torch decides whether the gradient
passes) and beyond them, and Fourier inputs over several periods; degrees and frequency counts down to the
smallest; fp32, bf16, fp16 through the gate.

Without a GPU these run under TRITON_INTERPRET=1 (set in conftest.py) at small sizes; the `gpu` test runs the
compiled kernels on a CUDA device and skips without one."""

import pytest
import torch
from kernel_devices import DEVICES, INTERPRETED, assert_matches_float64, gpu, outputs_and_grads

from kanbench.harness.correctness import check_against_reference
from kanbench.harness.results import Config
from kanbench.registry import create_layer

CASES = [  # (variant, hyperparameters, input scale)
    ("cheby_kan", {"degree": 5}, 1.2),
    ("cheby_kan", {"degree": 0}, 1.2),
    ("cheby_kan", {"degree": 2}, 0.6),
    ("fourier_kan", {"frequencies": 4}, 2.0),
    ("fourier_kan", {"frequencies": 1}, 2.0),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("variant", "hp", "scale"), CASES)
@pytest.mark.parametrize(("rows", "d_in", "d_out"), [(37, 13, 19), (5, 40, 33)])
def test_forward_and_every_gradient_match_the_float64_reference(device, variant, hp, scale, rows, d_in, d_out):
    torch.manual_seed(rows)
    reference = create_layer(variant, d_in, d_out, **hp).double()
    fused = create_layer(variant, d_in, d_out, impl="triton", **hp)
    fused.load_state_dict(reference.state_dict())
    g = torch.Generator().manual_seed(d_in)
    x = torch.randn(rows, d_in, generator=g, dtype=torch.float64) * scale
    x.view(-1)[:5] = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0], dtype=torch.float64)  # the clamp's corners, beyond
    x = x.float().double()
    dy = torch.randn(rows, d_out, generator=g, dtype=torch.float64)
    assert_matches_float64(reference, fused, x, dy, device)


def one_coordinate_chebyshev_pair():
    """A one-input Chebyshev layer (degree 3, three outputs): the float64 reference and the fused kernel with its
    weights, so that each row of ``dx`` is one coordinate's gradient."""
    torch.manual_seed(0)
    reference = create_layer("cheby_kan", 1, 3, degree=3).double()
    fused = create_layer("cheby_kan", 1, 3, impl="triton", degree=3)
    fused.load_state_dict(reference.state_dict())
    return reference, fused


@pytest.mark.parametrize("device", DEVICES)
def test_the_chebyshev_gradient_at_the_clamps_corners_is_torchs_and_stops_beyond(device):
    """Input gradient of one coordinate, alone: at ±1 the installed torch's clamp decides whether the polynomials'
    part passes (up to torch 2.13 it does, from 2.14 it does not), beyond ±1 only the SiLU path is left; the
    per-coordinate check that a norm over a whole tensor could blur."""
    reference, fused = one_coordinate_chebyshev_pair()
    x = torch.tensor([[-1.5], [-1.0], [1.0], [1.5]], dtype=torch.float64)
    dy = torch.ones(4, 3, dtype=torch.float64)
    truth = outputs_and_grads(reference, x, dy)["dx"]
    got = outputs_and_grads(fused.to(device), x.float().to(device), dy.float().to(device))["dx"].double().cpu()
    torch.testing.assert_close(got, truth, rtol=1e-5, atol=1e-6)


def clamp_with(at_lower: float, at_upper: float):
    """A ``Tensor.clamp`` that passes the gradient ``at_lower`` to an input exactly at its lower bound and
    ``at_upper`` at its upper one (1 at both up to torch 2.13, 0 at both from 2.14; the others are for a torch that
    splits them)."""
    original = torch.Tensor.clamp

    def clamp(self, low, high):
        passed = torch.where((self > low) & (self < high), 1.0, 0.0).to(self.dtype)
        passed = torch.where(self == low, at_lower, passed)
        passed = torch.where(self == high, at_upper, passed)
        return original(self.detach(), low, high) + passed * (self - self.detach())  # value clamped, slope passed

    return clamp


CONVENTIONS = [(1.0, 1.0), (0.0, 0.0), (1.0, 0.0), (0.0, 0.5)]  # clamp's gradient at (−1, +1)


@pytest.mark.skipif(not INTERPRETED, reason="flips constants the interpreter reads at run time; a compiled "
                    "kernel bakes in the installed torch's, which the corners test above checks on the GPU")
def test_the_chebyshev_kernels_take_any_clamp_convention_at_the_corners(monkeypatch):
    """torch 2.14 moved clamp's gradient at a bound from 1 to 0 (pytorch/pytorch#184574) and the kernels follow the
    installed torch (kernels/kan_features_triton.py probes each bound at import): each convention in turn, kernel
    against a reference whose clamp has it, so the ones the installed torch does not take are checked too,
    including bounds that disagree. Under the interpreter only, which reads the constants when the kernel runs (a
    compiled kernel has them baked in)."""
    import triton.language as tl

    from kanbench.kernels import kan_features_triton

    reference, fused = one_coordinate_chebyshev_pair()
    x = torch.tensor([[-1.5], [-1.0], [0.5], [1.0], [1.5]], dtype=torch.float64)
    dy = torch.ones(5, 3, dtype=torch.float64)
    truths = {}
    for lower, upper in CONVENTIONS:
        with monkeypatch.context() as patch:
            patch.setattr(torch.Tensor, "clamp", clamp_with(lower, upper))
            truths[lower, upper] = outputs_and_grads(reference, x, dy)["dx"]
        with monkeypatch.context() as patch:
            patch.setattr(kan_features_triton, "CLAMP_GRAD_AT_LOWER", tl.constexpr(lower))
            patch.setattr(kan_features_triton, "CLAMP_GRAD_AT_UPPER", tl.constexpr(upper))
            got = outputs_and_grads(fused, x.float(), dy.float())["dx"].double()
        torch.testing.assert_close(got, truths[lower, upper], rtol=1e-5, atol=1e-6)
    differ = (truths[1.0, 1.0] - truths[0.0, 0.0]).abs().flatten() > 1e-3
    assert differ.tolist() == [False, True, False, True, False]  # the two conventions part at the corners alone
    lower_only = (truths[1.0, 0.0] - truths[0.0, 0.0]).abs().flatten() > 1e-3
    assert lower_only.tolist() == [False, True, False, False, False]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("variant", ["cheby_kan", "fourier_kan"])
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_the_block_passes_the_gate(device, variant, dtype):
    config = Config(variant, "triton", "block", device, dtype, 24, 16, 40)
    result = check_against_reference(config, config.build())
    assert result.ok, result.message


@gpu
@pytest.mark.parametrize("variant", ["cheby_kan", "fourier_kan"])
def test_gpu_block_at_a_transformer_shape_passes_the_gate(variant):
    config = Config(variant, "triton", "block", "cuda", "bf16", 512, 256, 1024)
    result = check_against_reference(config, config.build())
    assert result.ok, result.message


def test_the_clamp_probe_reads_the_same_convention_whatever_grad_mode_imports_it():
    """A kernel's first call may come under ``torch.no_grad()`` or inference mode (the gate's inference run, a Ray
    worker's first unit), and the module, with its probe, is imported then: the probe must not need grad mode."""
    from kanbench.kernels.kan_features_triton import torch_clamp_gradients_at_bounds

    expected = torch_clamp_gradients_at_bounds()
    with torch.no_grad():
        assert torch_clamp_gradients_at_bounds() == expected
    with torch.inference_mode():
        assert torch_clamp_gradients_at_bounds() == expected
    x = torch.tensor([-1.0, 1.0], requires_grad=True)
    torch.clamp(x, -1.0, 1.0).sum().backward()
    assert expected == tuple(x.grad.tolist())
