"""FLOPs per configuration, forward and forward+backward, in four labelled columns:

- ``flops_matmul``: matmul-only, as torch's ``FlopCounterMode`` counts it (1 multiply-add = 2 FLOPs);
- ``flops_matmul_elementwise``: plus the elementwise work by kanbench's convention (:mod:`kanbench.costs`);
- ``flops_analytic``: the variant's formula × tokens (forward+backward = 3 × forward by convention);
- ``flops_fvcore``: fvcore's count as a cross-check, forward only, in its own unit (1 MAC = 1 flop, elementwise
  mostly ignored).

``spark_ffn`` adds ``active_fraction`` (measured on the configuration's random input) and ``flops_effective``:
the matmul FLOPs when only the active neurons' weights are used.
"""

from __future__ import annotations

import copy
import warnings

import torch

from kanbench import registry
from kanbench.harness.env import DTYPES
from kanbench.harness.flop_counter import CountedFlops, count_flops
from kanbench.harness.results import Config
from kanbench.harness.workload import build, sample_input
from kanbench.variants.spark_ffn import effective_flops


def counted(config: Config, module: torch.nn.Module, backward: bool) -> CountedFlops:
    """Count on the meta device (no arithmetic runs, so any size is free); fall back to the real device for
    modules that cannot run on meta."""
    try:
        meta = copy.deepcopy(module).to("meta")
        x = torch.empty(config.tokens, config.d_model, device="meta", dtype=DTYPES[config.dtype])
        return count_flops(meta, x, backward=backward)
    except (NotImplementedError, RuntimeError):
        return count_flops(module, sample_input(config), backward=backward)


def counting_module(config: Config, module: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """The module whose dispatched ops are counted. A fused kernel is invisible to the dispatcher, so a kernel impl
    is counted through its reference, which computes the same math (the correctness gate checks that)."""
    if config.impl == "reference":
        return module, ""
    reference = build(config, impl="reference")
    reference.load_state_dict(module.state_dict())
    return reference, "; counted on the reference (same math as the kernel)"


def fvcore_flops(config: Config, module: torch.nn.Module) -> float | None:
    """fvcore's forward count, or None where fvcore is not installed."""
    try:
        from fvcore.nn import FlopCountAnalysis
    except ImportError:
        return None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(module, (sample_input(config),))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return float(analysis.total())


def measure_active_fractions(config: Config, module: torch.nn.Module) -> tuple[float, float]:
    """(active, union) fractions of a Spark FFN on a held-out input of the configuration's shape: the share of
    (row, neuron) pairs the threshold keeps, and the share of neurons active in at least one row (what a sparse
    decode path computes). Measured on the impl's own module, so a kernel reports its own counts."""
    module.track_active = True
    try:
        with torch.no_grad():
            module(sample_input(config, seed_offset=3))
        return module.last_active_fraction, module.last_union_fraction
    finally:
        module.track_active = False


def flop_metrics(config: Config, module: torch.nn.Module, mode: str) -> list[tuple[str, float | None, str, str]]:
    """(metric, value, unit, message) for one mode: ``fwd_no_grad``/``decode`` count the forward, ``fwd_bwd``
    forward+backward. A None value is a column that cannot be computed here (the message says why)."""
    backward = mode == "fwd_bwd"
    n = config.tokens
    analytic = registry.cost(config.form, config.variant, config.d_model, config.d_hidden, **config.hparams)
    impl_module = module
    module, how = counting_module(config, module)
    count = counted(config, module, backward)
    assumed = "assumed 1/elem: " + ",".join(sorted(count.assumed_ops)) if count.assumed_ops else ""
    out: list[tuple[str, float | None, str, str]] = [
        ("flops_matmul", count.matmul, "FLOP", "FlopCounterMode" + how),
        ("flops_matmul_elementwise", count.total, "FLOP", (assumed or "kanbench convention") + how),
        ("flops_analytic", n * (analytic.fwd_bwd_flops if backward else analytic.fwd_flops), "FLOP",
         "formula; backward = 2x forward" if backward else "formula"),
    ]
    if not backward:
        value = fvcore_flops(config, module)
        out.append(("flops_fvcore", value, "fvcore-flop (1 MAC)",
                    "fvcore cross-check" + how if value is not None else "fvcore not installed"))
    if config.variant == "spark_ffn" and config.form == "block":
        fraction, union = measure_active_fractions(config, impl_module)
        effective = n * effective_flops(config.d_model, config.d_hidden, fraction, module.r)
        out.append(("active_fraction", fraction, "fraction", f"target k/d_ff = {module.k / config.d_hidden:.4f}"))
        out.append(("active_union_fraction", union, "fraction",
                    f"neurons active in any of the {n} rows (a sparse path computes these)"))
        out.append(("flops_effective", 3 * effective if backward else effective, "FLOP",
                    "matmul FLOPs over the active neurons only"))
    return out
