"""GR-KAN's Triton rational against the float64 reference: forward, dx, da, db; dtypes; determinism.

Without a GPU these run under TRITON_INTERPRET=1 (set in conftest.py) at small sizes; the `gpu` tests run the
compiled kernels on a CUDA device and skip without one."""

import pytest
import torch
from kernel_devices import CUDA, DEVICES, INTERPRETED, gpu

from kanbench.kernels import launch
from kanbench.kernels.grkan.rational_triton import rational_backward, rational_triton
from kanbench.registry import create_block, get_variant
from kanbench.variants.grkan import rational


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
    ((9,), 200, 2, True),  # 100 channels a group: the second stage sums a group in several 64-channel chunks
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


@pytest.mark.parametrize("triton_version, numpy_version, broken", [
    ("3.6.0", "2.4.6", True), ("3.5.1", "2.5.0", True), ("3.6.0", "2.3.5", False), ("3.7.0", "2.4.6", False),
    ("3.9.0", "2.4.6", False), ("3.6.0+git1234", "2.4.0rc1", True), ("3.10.0", "2.4.0", False),
])
def test_an_interpreter_that_cannot_run_under_the_installed_numpy_is_named(triton_version, numpy_version, broken):
    # triton <= 3.6's interpreter calls int() on one-element arrays, which numpy 2.4 refuses: every kernel failed
    # with "only 0-dimensional arrays can be converted to Python scalars" from inside Triton.
    reason = launch.interpreter_incompatibility(triton_version, numpy_version)
    assert (reason is not None) == broken
    if broken:
        assert f"triton {triton_version}" in reason and f"numpy {numpy_version}" in reason
        assert "pip install 'triton>=3.7' or 'numpy<2.4'" in reason


def test_a_broken_interpreter_is_a_skip_reason_and_a_clear_error_before_any_launch(monkeypatch):
    reason = launch.interpreter_incompatibility("3.6.0", "2.4.6")
    monkeypatch.setattr(launch, "installed_interpreter_incompatibility", lambda: reason)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert launch.triton_unavailable("cpu") == reason
    with pytest.raises(RuntimeError, match=r"grkan triton: triton 3\.6\.0's interpreter"):
        rational_triton(torch.randn(2, 16), torch.zeros(1, 6), torch.ones(8, 4))


@pytest.mark.parametrize("device", DEVICES)
def test_width_not_divisible_by_groups_is_rejected(device):
    with pytest.raises(ValueError, match="width 30 is not divisible by groups=8"):
        rational_triton(torch.randn(2, 30, device=device), torch.zeros(1, 6), torch.ones(8, 4))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("form", ["block", "op"])
def test_triton_impl_passes_the_harness_gate(device, form, grkan_gate):
    result, _ = grkan_gate("triton", form, device)
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


# -- triton_fused: the GR-KAN layer as one matmul with F applied to its input tiles ----------------------------------

FUSED_CASES = [  # (leading shape, d_in, d_out, groups, shared): sizes not multiples of the 16/32/16 interpreter tiles
    ((37,), 48, 40, 8, True),
    ((3, 7), 24, 70, 4, False),
    ((1,), 16, 16, 2, True),
]


def fused_errors(y, y_ref, got, ref):
    """Relative error of the output and of each of the five gradients (x, a, b, W, bias)."""
    pairs = [("y", y, y_ref)] + [(n, t.grad, r.grad) for n, t, r in zip("x a b W bias".split(), got, ref, strict=True)]
    return {name: rel(u, v.detach().cpu()) for name, u, v in pairs}


def fused_inputs(lead, d_in, d_out, groups, shared, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*lead, d_in, dtype=torch.float64, generator=g) * 1.5
    a, b = coefficients(groups, shared, g)
    weight = torch.randn(d_out, d_in, dtype=torch.float64, generator=g) / d_in**0.5
    bias = torch.randn(d_out, dtype=torch.float64, generator=g)
    dy = torch.randn(*lead, d_out, dtype=torch.float64, generator=g)
    return (x, a, b, weight, bias), dy


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("lead", "d_in", "d_out", "groups", "shared"), FUSED_CASES)
def test_fused_layer_forward_and_all_five_gradients_match_the_float64_reference(device, lead, d_in, d_out, groups,
                                                                                shared):
    from kanbench.kernels.grkan.fused_triton import rational_linear

    inputs, dy = fused_inputs(lead, d_in, d_out, groups, shared, seed=d_in + d_out)
    ref = [t.clone().requires_grad_() for t in inputs]
    y_ref = rational(ref[0], ref[1], ref[2]) @ ref[3].T + ref[4]
    y_ref.backward(dy)
    got = [t.float().to(device).requires_grad_() for t in inputs]
    y = rational_linear(*got)
    y.backward(dy.float().to(device))
    assert y.shape == y_ref.shape
    errors = fused_errors(y, y_ref, got, ref)
    assert max(errors.values()) < 1e-5, errors


@pytest.mark.skipif(not INTERPRETED, reason="forces tiles through the interpreter's fixed tile; a GPU runs the "
                                            "autotuned kernel in the other tests")
@pytest.mark.parametrize("space", ["TENSOR_CORE_SHAPES", "CUDA_CORE_SHAPES"])
def test_fused_layer_at_every_tile_its_autotuners_may_pick(monkeypatch, space):
    """Each tile of both autotuning spaces (sm_80 on; sm_75 and older) forced as the interpreter's tile, at sizes
    that leave every tile partly masked: whichever tile the GPU's autotuner picks computes the same layer."""
    from kanbench.kernels.grkan import fused_triton

    inputs, dy = fused_inputs((37,), 48, 40, 8, True, seed=11)
    ref = [t.clone().requires_grad_() for t in inputs]
    y_ref = rational(ref[0], ref[1], ref[2]) @ ref[3].T + ref[4]
    y_ref.backward(dy)
    for bm, bn, bk, _, _ in getattr(fused_triton, space):
        monkeypatch.setattr(fused_triton, "INTERPRETER_BLOCKS", {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk,
                                                                 "GROUP_M": 8})
        got = [t.float().requires_grad_() for t in inputs]
        y = fused_triton.rational_linear(*got)
        y.backward(dy.float())
        errors = fused_errors(y, y_ref, got, ref)
        assert max(errors.values()) < 1e-5, (bm, bn, bk, errors)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fused_layer_in_half_precision(device, dtype):
    from kanbench.kernels.grkan.fused_triton import rational_linear

    inputs, dy = fused_inputs((40,), 64, 48, 8, True, seed=5)
    x, a, b, weight, bias = inputs
    rounded = [x.to(dtype).double(), a, b, weight.to(dtype).double(), bias.to(dtype).double()]
    ref = [t.clone().requires_grad_() for t in rounded]
    y_ref = rational(ref[0], ref[1], ref[2]) @ ref[3].T + ref[4]
    y_ref.backward(dy.to(dtype).double())
    got = [t.to(device=device, dtype=dtype if i in (0, 3, 4) else torch.float32).requires_grad_()
           for i, t in enumerate(rounded)]
    y = rational_linear(*got)
    y.backward(dy.to(device=device, dtype=dtype))
    assert y.dtype == dtype and got[0].grad.dtype == dtype and got[3].grad.dtype == dtype
    tolerance = 2e-2 if dtype == torch.bfloat16 else 4e-3
    errors = fused_errors(y, y_ref, got, ref)
    assert max(errors.values()) < tolerance, errors


@pytest.mark.parametrize("device", DEVICES)
def test_fused_weight_gradient_is_bit_identical_across_calls(device):
    from kanbench.kernels.grkan.fused_triton import rational_linear

    inputs, dy = fused_inputs((50,), 32, 24, 4, False, seed=6)
    grads = []
    for _ in range(2):
        got = [t.float().to(device).requires_grad_() for t in inputs]
        rational_linear(*got).backward(dy.float().to(device))
        grads.append([t.grad for t in got])
    for u, v in zip(*grads, strict=True):
        assert torch.equal(u, v)


@pytest.mark.parametrize("device", DEVICES)
def test_fused_layer_rejects_a_mismatched_weight(device):
    from kanbench.kernels.grkan.fused_triton import rational_linear

    x = torch.randn(4, 32, device=device)
    with pytest.raises(ValueError, match=r"weight must be \(d_out, 32\)"):
        rational_linear(x, torch.zeros(1, 6), torch.ones(8, 4), torch.randn(16, 24, device=device))
    with pytest.raises(ValueError, match="width 30 is not divisible by groups=8"):
        rational_linear(torch.randn(4, 30, device=device), torch.zeros(1, 6), torch.ones(8, 4),
                        torch.randn(16, 30, device=device))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("form", ["block", "layer"])
def test_fused_impl_passes_the_harness_gate(device, form, grkan_gate):
    result, module = grkan_gate("triton_fused", form, device)
    assert sum(type(m).__name__ == "FusedGRKANLayer" for m in module.modules()) == (2 if form == "block" else 1)
    assert result.ok, result.message


@gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_compiled_fused_layer_on_gpu_at_kat_b_size(dtype):
    from kanbench.kernels.grkan.fused_triton import rational_linear

    inputs, dy = fused_inputs((64 * 197,), 768, 3072, 8, True, seed=7)
    ref = [t.cuda().requires_grad_() for t in inputs]
    y_ref = rational(ref[0], ref[1], ref[2]) @ ref[3].T + ref[4]
    y_ref.backward(dy.cuda())
    got = [t.to(device="cuda", dtype=dtype if i in (0, 3, 4) else torch.float32).requires_grad_()
           for i, t in enumerate(inputs)]
    y = rational_linear(*got)
    y.backward(dy.to(device="cuda", dtype=dtype))
    errors = fused_errors(y, y_ref, got, ref)
    assert max(errors.values()) < (1e-5 if dtype == torch.float32 else 2e-2), errors


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sign_at_zero", [1, 0])
def test_sign_at_zero_matches_the_reference_at_x_zero_and_b_zero(device, sign_at_zero):
    """Exact zeros in x and in b (the identity init's denominator): the op and the fused layer take sign(0) as the
    reference does, in both conventions."""
    from kanbench.kernels.grkan.fused_triton import rational_linear

    g = torch.Generator().manual_seed(11 + sign_at_zero)
    x = torch.randn(6, 16, dtype=torch.float64, generator=g)
    x[0, :4], x[1, :3] = 0.0, -0.0
    a, b = coefficients(2, True, g)
    b[0, :2] = 0.0  # half a group's denominator at the identity init
    dy = torch.randn(6, 16, dtype=torch.float64, generator=g)
    xr, ar, br = (t.clone().requires_grad_() for t in (x, a, b))
    rational(xr, ar, br, sign_at_zero).backward(dy)
    xt, at, bt = (t.float().to(device).requires_grad_() for t in (x, a, b))
    rational_triton(xt, at, bt, sign_at_zero).backward(dy.float().to(device))
    for u, v in ((xt.grad, xr.grad), (at.grad, ar.grad), (bt.grad, br.grad)):
        assert rel(u, v) < 1e-5
    assert (float(br.grad[0, :2].abs().min()) > 0) == (sign_at_zero == 1)  # b = 0 learns only with sign(0) = +1
    weight = torch.randn(8, 16, dtype=torch.float64, generator=g) / 4
    wr, fr = weight.clone().requires_grad_(), [t.clone().requires_grad_() for t in (x, a, b)]
    (rational(*fr, sign_at_zero) @ wr.T).backward(dy[:, :8])
    got = [t.float().to(device).requires_grad_() for t in (x, a, b, weight)]
    rational_linear(*got, sign_at_zero=sign_at_zero).backward(dy[:, :8].float().to(device))
    for u, v in zip(got, [*fr, wr], strict=True):
        assert rel(u.grad, v.grad) < 1e-5
