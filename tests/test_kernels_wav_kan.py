"""Wav-KAN's wavelet-sum Triton kernels against the float64 reference: output, dx and every parameter gradient
(w, t, s: each summed over tokens in its own kernel) at widths that are not tile multiples, with scales and
translations moved off their init so every term of the derivatives counts; fp32, bf16, fp16 through the gate; a
bit-identical backward.

Without a GPU these run under TRITON_INTERPRET=1 (set in conftest.py) at small sizes; the `gpu` test runs the
compiled kernels on a CUDA device and skips without one."""

import pytest
import torch
from kernel_devices import DEVICES, assert_bit_identical_reruns, assert_matches_float64, gpu

from kanbench.harness.correctness import check_against_reference
from kanbench.harness.results import Config
from kanbench.registry import create_layer


def trained_like(d_in, d_out, seed, impl="reference"):
    """A layer whose scales and translations are off their init (s = 1, t = 0, where ∂/∂s and ∂/∂t degenerate)."""
    torch.manual_seed(seed)
    layer = create_layer("wav_kan", d_in, d_out, impl=impl)
    with torch.no_grad():
        layer.scale.uniform_(0.5, 2.0)
        layer.translation.normal_(0.0, 0.5)
    return layer


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("rows", "d_in", "d_out"), [(37, 13, 19), (5, 40, 33), (70, 8, 1)])
def test_forward_and_every_gradient_match_the_float64_reference(device, rows, d_in, d_out):
    reference = trained_like(d_in, d_out, rows).double()
    fused = create_layer("wav_kan", d_in, d_out, impl="triton")
    fused.load_state_dict(reference.state_dict())
    g = torch.Generator().manual_seed(d_in)
    x = (torch.randn(rows, d_in, generator=g, dtype=torch.float64) * 1.5).float().double()
    dy = torch.randn(rows, d_out, generator=g, dtype=torch.float64)
    assert_matches_float64(reference, fused, x, dy, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_the_block_passes_the_gate(device, dtype):
    config = Config("wav_kan", "triton", "block", device, dtype, 24, 16, 40)
    result = check_against_reference(config, config.build())
    assert result.ok, result.message


@pytest.mark.parametrize("device", DEVICES)
def test_backward_is_deterministic(device):
    layer = trained_like(12, 20, 1, impl="triton").to(device)
    x, dy = torch.randn(70, 12, device=device), torch.randn(70, 20, device=device)
    assert_bit_identical_reruns(layer, x, dy)


@gpu
def test_gpu_block_at_a_transformer_shape_passes_the_gate():
    config = Config("wav_kan", "triton", "block", "cuda", "bf16", 512, 256, 1024)
    result = check_against_reference(config, config.build())
    assert result.ok, result.message
