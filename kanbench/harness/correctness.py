"""The gate before any timing: an impl against the ``reference`` on fresh random inputs, outputs and gradients.

The reference runs in float64 on the same device; the impl in the configuration's dtype. Errors are relative
norms ‖impl − ref‖ / ‖ref‖, held to a tolerance by dtype (fp32 allows TF32-class dots at ~3e-4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kanbench.harness.env import DTYPES
from kanbench.harness.results import Config
from kanbench.harness.workload import build, output_width, sample_input

TOLERANCE = {"fp64": 1e-9, "fp32": 1e-3, "fp16": 1e-2, "bf16": 3e-2}


@dataclass
class GateResult:
    ok: bool
    max_error: float
    message: str


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    value, reference = value.detach().double(), reference.detach().double()
    if not torch.isfinite(value).all():
        return float("inf")
    return float((value - reference).norm() / reference.norm().clamp_min(1e-30))


def check_finite(config: Config, module: torch.nn.Module) -> GateResult:
    """For the reference itself: the forward must produce finite numbers."""
    with torch.no_grad():
        y = module(sample_input(config, seed_offset=7))
    if not torch.isfinite(y).all():
        return GateResult(False, float("inf"), "non-finite output (NaN/Inf) from the forward")
    return GateResult(True, 0.0, "reference impl: output finite")


def check_against_reference(config: Config, module: torch.nn.Module) -> GateResult:
    """Compare ``module`` (the impl) with the reference loaded with the same weights, forward and backward."""
    reference = build(config, impl="reference").double()
    reference.load_state_dict(module.state_dict())  # same weights: the impl's, upcast
    x = sample_input(config, seed_offset=11, dtype=torch.float64)
    upstream = torch.randn(config.tokens, output_width(config), dtype=torch.float64, device=config.device)
    x_ref = x.clone().requires_grad_(True)
    x_imp = x.to(DTYPES[config.dtype]).requires_grad_(True)
    y_ref, y_imp = reference(x_ref), module(x_imp)
    y_ref.backward(upstream)
    y_imp.backward(upstream.to(y_imp.dtype))
    errors = {"output": relative_error(y_imp, y_ref), "grad_input": relative_error(x_imp.grad, x_ref.grad)}
    imp_params = dict(module.named_parameters())
    for name, p in reference.named_parameters():
        if p.grad is not None and imp_params[name].grad is not None:
            errors[f"grad_{name}"] = relative_error(imp_params[name].grad, p.grad)
    worst = max(errors, key=errors.get)
    tolerance = TOLERANCE[config.dtype]
    ok = errors[worst] <= tolerance
    message = f"worst {worst}: rel. error {errors[worst]:.3g} ({'<=' if ok else '>'} {tolerance:g} for {config.dtype})"
    return GateResult(ok, errors[worst], message)


def gate(config: Config, module: torch.nn.Module) -> GateResult:
    if config.impl == "reference":
        return check_finite(config, module)
    return check_against_reference(config, module)
