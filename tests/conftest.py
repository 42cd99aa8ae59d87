"""Shared test setup. Triton kernels run under the interpreter on machines without a GPU: the variable must be set
before any kernel module is imported, so it is set here, at collection time."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def grkan_gate():
    """``grkan_gate(impl, form, device) -> (GateResult, module)``, see :func:`_grkan_gate`."""
    return _grkan_gate


def _grkan_gate(impl: str, form: str, device: str):
    """The harness's correctness gate for a GR-KAN impl, with denominators moved off their inits (b = 0 or near it
    there, where the gradient of |b| is degenerate) so that every coefficient gradient is exercised."""
    from kanbench.harness.correctness import check_against_reference
    from kanbench.harness.results import Config

    config = Config("grkan", impl, form, device, "fp32", 24, 32, 64 if form != "op" else 32)
    module = config.build()
    for m in module.modules():
        if hasattr(m, "denominator"):
            with torch.no_grad():
                m.denominator.add_(0.2)
    return check_against_reference(config, module), module


@pytest.fixture(autouse=True)
def a_small_last_level_cache(monkeypatch):
    """Every test's decode rows rotate weights as on a CPU with a 1 MiB last-level cache, whatever this machine
    reports: the suite must not depend on the machine, and under a server's 480 MiB L3 each tiny test module would
    be deep-copied 4096 times per decode configuration. The tests of the copies set the cache they check, or take
    the machine's own (test_numbers.py keeps the function from before any fixture ran)."""
    from kanbench.harness import workload

    monkeypatch.setattr(workload, "last_level_cache_bytes", lambda device: 2**20)
