"""Every variant × impl usable on this machine at small sizes, forward and forward+backward.

In the plain test run (pytest's addopts carry --benchmark-disable) each benchmark runs once, as a smoke test;
`.ci/run` runs them again timed in a short mode and keeps the JSON, which `kanbench import-benchmark` turns into
kanbench's CSV. GPU benchmarks synchronise inside the timed call. Interpreted Triton is not a performance path, so
a Triton impl is benchmarked only where a GPU runs it. Every pair passes the correctness gate at the benchmark's
shape first: one it rejects (a peer package, say) is skipped with the gate's verdict, never timed."""

import functools

import pytest
import torch

from kanbench.harness.correctness import gate
from kanbench.harness.results import Config
from kanbench.registry import create_block, get_variant, list_variants, make_input

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOKENS, D_MODEL, D_HIDDEN = 64, 32, 128


def usable():
    for name in list_variants():
        spec = get_variant(name)
        for impl in spec.usable_impls(DEVICE):
            if not spec.impl(impl).emulated(DEVICE):  # e.g. Triton under the interpreter: checked, never timed
                yield name, impl


@functools.cache
def verdict(variant: str, impl: str) -> str | None:
    """Why the gate rejects the pair at the benchmark's shape, or None."""
    config = Config(variant, impl, "block", DEVICE, "fp32", TOKENS, D_MODEL, D_HIDDEN, {}, 0)
    result = gate(config, config.build())
    return None if result.ok else f"{result.status}: {result.message}"


@pytest.mark.parametrize(("variant", "impl"), list(usable()))
@pytest.mark.parametrize("mode", ["fwd_no_grad", "fwd_bwd"])
def test_block(benchmark, variant, impl, mode):
    rejected = verdict(variant, impl)
    if rejected:
        pytest.skip(f"{variant}/{impl} rejected by the correctness gate, so never timed ({rejected[:200]})")
    torch.manual_seed(0)
    block = create_block(variant, D_MODEL, D_HIDDEN, impl=impl).to(DEVICE)
    x = make_input(variant, TOKENS, D_MODEL, device=DEVICE)
    upstream = torch.randn(TOKENS, D_MODEL, device=DEVICE)
    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
    benchmark.extra_info.update(variant=variant, impl=impl, form="block", mode=mode, device=DEVICE, dtype="fp32",
                                tokens=TOKENS, d_model=D_MODEL, d_hidden=D_HIDDEN)
    if mode == "fwd_no_grad":
        def call():
            with torch.no_grad():
                y = block(x)
            sync()
            return y
    else:
        x.requires_grad_(True)

        def call():
            block.zero_grad(set_to_none=True)
            x.grad = None
            y = block(x)
            y.backward(upstream)
            sync()
            return y
    y = benchmark(call)
    assert y.shape == (TOKENS, D_MODEL) and torch.isfinite(y).all()
