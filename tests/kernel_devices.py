"""What the kernel tests share: where they run (the compiled kernels on a CUDA device, their interpreter twins on
the CPU: TRITON_INTERPRET=1, set by conftest.py on machines without a GPU), how they read a layer's gradients and
how they hold a kernel layer to its float64 reference."""

import os

import pytest
import torch

CUDA = torch.cuda.is_available()
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
# the CPU runs are the interpreter twins (every machine without a GPU); a GPU machine runs the compiled kernels
DEVICES = (["cpu"] if INTERPRETED else []) + (["cuda"] if CUDA else [])
gpu = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU; the interpreter twins above cover the same checks")


def outputs_and_grads(layer, x, dy):
    """{"y", "dx", every parameter's name: its gradient} of ``layer(x)`` backpropagating ``dy``."""
    for p in layer.parameters():
        p.grad = None
    x = x.clone().requires_grad_()
    y = layer(x)
    y.backward(dy)
    return {"y": y.detach(), "dx": x.grad, **{n: p.grad.clone() for n, p in layer.named_parameters()}}


def rel(u, v):
    """‖u − v‖ / ‖v‖ in float64 on the CPU."""
    return float((u.double().cpu() - v.double().cpu()).norm() / v.double().norm().clamp_min(1e-30))


def assert_matches_float64(reference, fused, x, dy, device, bound=2e-5):
    """``fused`` (fp32, on ``device``) gives the output, dx and every parameter gradient of ``reference`` (float64,
    same weights) to ``bound`` in relative norm, each quantity alone; ``x`` and ``dy`` are float64 that fp32 holds
    exactly."""
    truth = outputs_and_grads(reference, x, dy)
    got = outputs_and_grads(fused.to(device), x.float().to(device), dy.float().to(device))
    errors = {k: rel(got[k], truth[k]) for k in truth}
    assert set(got) == set(truth) and max(errors.values()) < bound, errors


def assert_bit_identical_reruns(layer, x, dy):
    """Two runs of ``layer`` forward and backward give the same bits (no atomics, fixed reduction orders)."""
    first, second = outputs_and_grads(layer, x, dy), outputs_and_grads(layer, x, dy)
    for key in first:
        assert torch.equal(first[key], second[key]), key
