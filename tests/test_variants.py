"""Every variant and form: shapes, gradients against float64 finite differences, parameter and FLOP formulas,
determinism."""

import copy

import pytest
import torch

from kanbench.harness.flop_counter import count_flops
from kanbench.registry import cost as registry_cost
from kanbench.registry import create, get_variant, list_variants, make_input

VARIANTS = list_variants()
D_MODEL, D_HIDDEN = 16, 32  # divisible by GR-KAN's 8 groups; k = 3 of 32 for Spark


def build(form, name, d_in, d_out, **hp):
    return create(form, name, d_in, d_out, **hp)


def cost(form, name, d_in, d_out, **hp):
    return registry_cost(form, name, d_in, d_out, **hp)


def out_width(form, d_in, d_out):
    return d_out if form == "layer" else d_in


FORMS = [(form, n) for n in VARIANTS for form in get_variant(n).forms]


def inputs(name, *shape, dtype=torch.float32):
    # ReLU-KAN's bumps cover [-k/G, 1 + k/G]: its inputs are U[0, 1]; the others' N(0, 1).
    return make_input(name, *shape, dtype=dtype)


@pytest.mark.parametrize(("form", "name"), FORMS)
@pytest.mark.parametrize("lead", [(), (5,), (2, 3), (2, 1, 3)])
def test_output_shape_over_leading_shapes(form, name, lead):
    torch.manual_seed(0)
    module = build(form, name, D_MODEL, D_HIDDEN)
    y = module(inputs(name, *lead, D_MODEL) if lead else inputs(name, 4, D_MODEL)[0])
    assert y.shape == (*lead, out_width(form, D_MODEL, D_HIDDEN))
    assert torch.isfinite(y).all()


@pytest.mark.parametrize(("form", "name"), FORMS)
def test_leading_shape_does_not_change_the_values(form, name):
    hp = {"func_norm": "sample"} if name == "af_kan" else {}  # 'batch' min-max mixes tokens by design
    torch.manual_seed(0)
    module = build(form, name, D_MODEL, D_HIDDEN, **hp)
    x = inputs(name, 2, 3, D_MODEL)
    assert torch.allclose(module(x).reshape(6, -1), module(x.reshape(6, D_MODEL)), atol=1e-6)


def _randomise_rationals(module):
    # Away from b = 0 (|b| has a kink there) with the sign varied, and a generic numerator.
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("denominator"):
                p.copy_((0.1 + torch.rand_like(p)) * torch.where(torch.rand_like(p) < 0.5, -1.0, 1.0))
            elif name.endswith("numerator"):
                p.copy_(torch.randn_like(p) * 0.5)


@pytest.mark.parametrize(("form", "name"), FORMS)
def test_gradcheck_in_float64(form, name):
    torch.manual_seed(0)
    d_in, d_out = (8, 16) if name != "spark_ffn" else (8, 32)
    module = build(form, name, d_in, d_out).double()
    _randomise_rationals(module)
    names = [n for n, p in module.named_parameters() if p.requires_grad]
    params = [p.detach().clone().requires_grad_() for n, p in module.named_parameters() if p.requires_grad]
    x = inputs(name, 3, d_in, dtype=torch.float64)
    if name == "grkan":
        x = x + 0.05 * torch.sign(x)  # away from the |x| kink at 0
    x.requires_grad_()

    def f(x, *ps):
        return torch.func.functional_call(module, dict(zip(names, ps, strict=True)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("form", "name"), FORMS)
def test_counted_parameters_equal_the_formula(form, name):
    module = build(form, name, D_MODEL, D_HIDDEN)
    counted = sum(p.numel() for p in module.parameters())
    assert counted == cost(form, name, D_MODEL, D_HIDDEN).params


@pytest.mark.parametrize(("form", "name"), FORMS)
def test_analytic_flops_per_token_equal_the_counted_ones(form, name):
    """Counting at 3 and 1 tokens and taking the difference removes per-call work (weight scaling, knot
    differences), leaving exactly what one more token costs."""
    module = copy.deepcopy(build(form, name, D_MODEL, D_HIDDEN)).to("meta")
    three, one = (count_flops(module, torch.randn(n, D_MODEL, device="meta")) for n in (3, 1))
    analytic = cost(form, name, D_MODEL, D_HIDDEN)
    assert (three.matmul - one.matmul) / 2 == analytic.matmul_flops
    assert (three.elementwise - one.elementwise) / 2 == analytic.elementwise_flops
    assert not three.assumed_ops


@pytest.mark.parametrize(("form", "name"), FORMS)
def test_training_matmul_flops_are_three_times_forward(form, name):
    module = build(form, name, D_MODEL, D_HIDDEN)
    x = inputs(name, 4, D_MODEL)
    fwd, fwd_bwd = count_flops(module, x), count_flops(module, x, backward=True)
    assert fwd_bwd.matmul == 3 * fwd.matmul
    assert fwd_bwd.elementwise > fwd.elementwise


@pytest.mark.parametrize(("form", "name"), FORMS)
def test_same_seed_gives_the_same_output(form, name):
    outs = []
    for _ in range(2):
        torch.manual_seed(1234)
        module = build(form, name, D_MODEL, D_HIDDEN)
        outs.append(module(inputs(name, 4, D_MODEL)))
    assert torch.equal(outs[0], outs[1])
    torch.manual_seed(4321)
    assert not torch.equal(outs[0], build(form, name, D_MODEL, D_HIDDEN)(inputs(name, 4, D_MODEL)))
