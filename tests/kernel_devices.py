"""Where the kernel tests run: the compiled kernels on a CUDA device, their interpreter twins on the CPU
(TRITON_INTERPRET=1, set by conftest.py on machines without a GPU)."""

import os

import pytest
import torch

CUDA = torch.cuda.is_available()
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
# the CPU runs are the interpreter twins (every machine without a GPU); a GPU machine runs the compiled kernels
DEVICES = (["cpu"] if INTERPRETED else []) + (["cuda"] if CUDA else [])
gpu = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU; the interpreter twins above cover the same checks")
