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


def _errors(module: torch.nn.Module, x: torch.Tensor, upstream: torch.Tensor,
            truth: dict[str, torch.Tensor]) -> dict[str, float]:
    """Relative errors of ``module``'s output and gradients (input, every parameter) against ``truth``."""
    x = x.detach().clone().requires_grad_(True)
    y = module(x)
    y.backward(upstream.to(y.dtype))
    got = {"output": y, "grad_input": x.grad}
    got.update({f"grad_{n}": p.grad for n, p in module.named_parameters() if p.grad is not None})
    return {k: relative_error(got[k], v) for k, v in truth.items() if k in got}


def check_against_reference(config: Config, module: torch.nn.Module) -> GateResult:
    """Compare ``module`` (the impl) with the reference loaded with the same weights, forward and backward.

    Truth is the reference in float64. Each quantity passes if its error is within the dtype's tolerance, or within
    twice the error of the reference itself run in the same dtype: a sum over millions of bf16 products (a
    coefficient gradient) is off by more than 3e-2 whoever computes it, and the gate asks the kernel to be no less
    accurate than the reference, not more accurate than the dtype allows."""
    reference = build(config, impl="reference").double()
    reference.load_state_dict(module.state_dict())  # same weights: the impl's, upcast
    x = sample_input(config, seed_offset=11, dtype=torch.float64)
    upstream = torch.randn(config.tokens, output_width(config), dtype=torch.float64, device=config.device)
    x_ref = x.clone().requires_grad_(True)
    y_ref = reference(x_ref)
    y_ref.backward(upstream)
    truth = {"output": y_ref.detach(), "grad_input": x_ref.grad}
    truth.update({f"grad_{n}": p.grad for n, p in reference.named_parameters() if p.grad is not None})
    dtype = DTYPES[config.dtype]
    errors = _errors(module, x.to(dtype), upstream, truth)
    same_dtype = build(config, impl="reference")
    same_dtype.load_state_dict(module.state_dict())
    reference_errors = _errors(same_dtype, x.to(dtype), upstream, truth) if dtype != torch.float64 else {}
    base = TOLERANCE[config.dtype]
    allowed = {k: max(base, 2 * reference_errors.get(k, 0.0)) for k in errors}
    worst = max(errors, key=lambda k: errors[k] / allowed[k])
    ok = all(errors[k] <= allowed[k] for k in errors)
    message = (f"worst {worst}: rel. error {errors[worst]:.3g} ({'<=' if ok else '>'} {allowed[worst]:.3g}: "
               f"max of {base:g} for {config.dtype} and 2x the reference's own {config.dtype} error "
               f"{reference_errors.get(worst, 0.0):.3g})")
    return GateResult(ok, errors[worst], message)


def gate(config: Config, module: torch.nn.Module) -> GateResult:
    if config.impl == "reference":
        return check_finite(config, module)
    return check_against_reference(config, module)
