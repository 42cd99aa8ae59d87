"""In 16-bit the gate holds every KAN layer to what the dtype itself forces. The references compute their features
in fp32 for 16-bit inputs and round them once (kanbench/variants/precision.py), as the kernels do, so the
reference's own bf16 error, and with it the allowance, stays near the MLP's (1.2–1.6 % per token at these shapes):
a systematic 2 % error in a bf16 layer, or 0.5 % in fp16, is caught. With every intermediate rounded in the dtype,
the Fourier layer's bf16 reference erred by tens of percent on a row, and no such error could be caught."""

import pytest
import torch

from kanbench import registry
from kanbench.harness import correctness
from kanbench.harness.results import Config

KAN_LAYERS = ["af_kan", "bspline_kan", "cheby_kan", "fourier_kan", "relu_kan", "wav_kan"]
FAULT = {"bf16": 1.02, "fp16": 1.005}  # a systematic output error, 2 % and 0.5 %


def scaled(variant: str, factor: float):
    """A layer constructor: the reference layer with its output multiplied by ``factor`` (same parameters)."""
    build = registry.get_variant(variant).impls[registry.REFERENCE].layer

    def make(*args, **hparams):
        layer = build(*args, **hparams)
        forward = layer.forward
        layer.forward = lambda x: forward(x) * factor
        return layer

    return make


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("variant", KAN_LAYERS)
def test_a_small_systematic_error_in_a_16_bit_layer_is_caught(variant, dtype):
    registry.register_impl(variant, registry.Impl("off", block=None, layer=scaled(variant, FAULT[dtype])))
    try:
        config = Config(variant, "off", "layer", "cpu", dtype, 64, 128, 512)
        torch.manual_seed(0)
        result = correctness.gate(config, config.build())
    finally:
        registry.unregister_impl(variant, "off")
    assert result.status == "mismatch" and "output" in result.message, result.message


@pytest.mark.parametrize("variant", ["fourier_kan", "cheby_kan", "relu_kan", "af_kan", "bspline_kan"])
def test_16_bit_features_are_rounded_once_from_fp32(variant):
    """The bf16 reference layer against its float64 self on the same (bf16) input and weights: its output errs by
    what rounding the features once, the matmul and the output costs (< 1.5 % per row here), not by intermediates
    rounded in bf16 (the Fourier angle f·x at f = 10, x = 3 alone was off by up to 0.06 rad)."""
    torch.manual_seed(0)
    layer = registry.create_layer(variant, 32, 48).bfloat16()
    truth = registry.create_layer(variant, 32, 48).double()
    truth.load_state_dict(layer.state_dict())
    spec = registry.get_variant(variant)
    x = torch.randn(256, 32, generator=torch.Generator().manual_seed(1)) * 3
    x = (x.abs() / 6).clamp(max=1) if spec.input_kind == "unit" else x
    x = x.bfloat16()
    with torch.no_grad():
        error = correctness.rowwise_error(layer(x), truth(x.double()))
    assert error < 0.015, error


# (variant, the gradient made wrong, by how much): each passes the worst-row check in bf16 at this shape, where a few
# rows of the reference's own run err by tens of percent (README, "What can pass undetected"), and is an error in
# most rows of that gradient, which the typical-row (median) check holds to what the other rows let the reference do.
BLOCK_FAULTS = [("spark_ffn", "input", 1.1), ("spark_ffn", "K", 1.15), ("cheby_kan", "input", 1.1),
                ("cheby_kan", "fc1.cheby_coeffs", 1.25), ("fourier_kan", "fc1.fourier_coeffs", 1.25)]


def wrong_gradient(variant: str, target: str, factor: float):
    """A block constructor: the reference block whose gradient of ``target`` (a parameter, or ``input``) comes out
    ``factor`` times too large, its output untouched (a wrong backward kernel)."""
    build = registry.get_variant(variant).impls[registry.REFERENCE].block

    def make(*args, **hparams):
        block = build(*args, **hparams)
        if target != "input":
            block.get_parameter(target).register_hook(lambda grad: grad * factor)
            return block
        forward = block.forward

        def scaled_input_gradient(x):
            if x.requires_grad:
                x.register_hook(lambda grad: grad * factor)
            return forward(x)

        block.forward = scaled_input_gradient
        return block

    return make


@pytest.mark.parametrize(("variant", "target", "factor"), BLOCK_FAULTS)
def test_an_error_in_most_rows_of_a_16_bit_block_gradient_is_caught_beside_rows_the_dtype_flips(
        variant, target, factor):
    registry.register_impl(variant, registry.Impl("off", block=wrong_gradient(variant, target, factor)))
    try:
        config = Config(variant, "off", "block", "cpu", "bf16", 64, 128, 512)
        torch.manual_seed(0)
        result = correctness.gate(config, config.build())
    finally:
        registry.unregister_impl(variant, "off")
    quantity = "grad_input" if target == "input" else f"grad_{target}"
    assert result.status == "mismatch" and quantity in result.message, result.message
    assert "median row" in result.message, result.message  # the worst-row check alone lets it through


def test_the_typical_row_sees_an_error_in_every_row_that_one_flipped_row_of_the_reference_hides():
    truth = torch.randn(64, 32, dtype=torch.float64)
    reference = truth * (1 + 1e-3 * torch.randn(64, 32, dtype=torch.float64))  # rounding in every row
    reference[5] = -truth[5]  # one row flipped, as a neuron beside Spark's threshold does
    wrong = truth * 1.1  # 10 % off in every row: under the reference's worst row, far over its typical one
    own, impl = correctness.row_errors(reference, truth), correctness.row_errors(wrong, truth)
    assert impl.worst < own.worst and impl.typical > 10 * own.typical
    assert impl.typical == pytest.approx(0.1, rel=0.1) and own.typical < 3e-3
    assert correctness.row_errors(wrong[:, :3], truth) == correctness.RowErrors(float("inf"), float("inf"))
