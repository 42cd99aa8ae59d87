"""FLOPs per configuration, forward and forward+backward, in four labelled columns:

- ``flops_matmul``: matmul-only, as torch's ``FlopCounterMode`` counts it (1 multiply-add = 2 FLOPs);
- ``flops_matmul_elementwise``: plus the elementwise work by kanbench's convention (:mod:`kanbench.costs`);
- ``flops_analytic``: the variant's formula × tokens (forward+backward = 3 × forward by convention);
- ``flops_fvcore``: fvcore's count as a cross-check, forward only, in its own unit (1 MAC = 1 flop, elementwise
  mostly ignored).

A variant may add its own rows through its spec's ``extra_flop_metrics`` hook (``spark_ffn``: ``active_fraction``
and ``active_union_fraction`` measured on a held-out input, and ``flops_effective``, the matmul FLOPs when only the
active neurons' weights are used).
"""

from __future__ import annotations

import copy
import warnings

import torch

from kanbench import registry
from kanbench.harness.base import PerConfiguration, Rows, register_harness
from kanbench.harness.context import RunContext
from kanbench.harness.flop_counter import CountedFlops, count_flops
from kanbench.harness.results import Config
from kanbench.harness.workload import sample_input


def counted(config: Config, module: torch.nn.Module, backward: bool) -> CountedFlops:
    """Count on the meta device (no arithmetic runs, so any size is free); fall back to the real device for
    modules that cannot run on meta."""
    try:
        meta = copy.deepcopy(module).to("meta")
        x = torch.empty(config.tokens, config.d_model, device="meta", dtype=config.torch_dtype)
        return count_flops(meta, x, backward=backward)
    except (NotImplementedError, RuntimeError):
        return count_flops(module, sample_input(config), backward=backward)


def counting_module(config: Config, module: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """The module whose dispatched ops are counted. A fused kernel is invisible to the dispatcher, so a kernel impl
    is counted through its reference, which computes the same math (the correctness gate checks that)."""
    if config.impl == registry.REFERENCE:
        return module, ""
    reference = config.build(registry.REFERENCE)
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


def flop_metrics(config: Config, module: torch.nn.Module, mode: str) -> list[tuple[str, float | None, str, str]]:
    """(metric, value, unit, message) for one mode: ``fwd_no_grad``/``decode`` count the forward, ``fwd_bwd``
    forward+backward. A None value is a column that cannot be computed here (the message says why)."""
    backward = mode == "fwd_bwd"
    n = config.tokens
    analytic = config.cost()
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
    if config.spec.extra_flop_metrics is not None:
        out += config.spec.extra_flop_metrics(config.form, impl_module, sample_input(config, seed_offset=3), backward)
    return out


@register_harness
class Flops(PerConfiguration):
    name = "flops"

    def measure(self, ctx: RunContext, config: Config, mode: str) -> Rows:
        module = ctx.module(config)
        params = sum(p.numel() for p in module.parameters())
        return [ctx.row(config, self.name, mode, metric, value, unit, "value", params,
                        "ok" if value is not None else "skipped", message)
                for metric, value, unit, message in flop_metrics(config, module, mode)]
