"""What the kernel tests share: where they run (the compiled kernels on a CUDA device, their interpreter twins on
the CPU: TRITON_INTERPRET=1, set by conftest.py on machines without a GPU) and how they read a layer's gradients."""

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
