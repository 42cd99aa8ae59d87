"""The gate before any measurement: an impl against the ``reference`` on several fresh input draws, every output
and gradient, held to a tolerance derived from the reference's own error in the same dtype.

For each configuration, at the exact shape that is measured (decode rows included):

- **Draws.** ``typical`` (the variant's input distribution), ``tails`` (three times wider, both signs, so rare
  large inputs occur) and, where the variant declares them (``edge_inputs``), ``edges``: inputs exactly at its grid
  knots or interval ends, just beside them and outside the range.
- **Truth.** The reference in float64, with the impl's weights (as stored in the impl's dtype, upcast) and the
  draw rounded to the impl's dtype, so that truth and impl compute the same function of the same numbers. A
  variant whose tokens are independent and whose reference keeps a large state per token (``token_state``:
  Wav-KAN's (tokens, d_out, d_in) tensors) has its truth and its reference-in-dtype runs built over chunks of
  tokens within TRUTH_BYTES (outputs concatenated, parameter gradients summed over the chunks), so that an impl
  without that state is still checked at a shape where the reference alone runs out of memory; the impl itself
  always runs the whole shape at once.
- **Quantities.** The output with gradients enabled, the output under ``torch.no_grad()`` (inference paths such as
  Spark's sparse decode run only there), the input gradient and every parameter gradient. A gradient the
  reference produces and the impl does not (or the reverse) is a ``mismatch``: an impl must do the same work.
  A configuration the run measures only without gradients (``decode``, or ``fwd_no_grad`` alone) is checked on
  the output under ``torch.no_grad()`` alone (``backward=False``; its row's mode is ``check_forward``): what is
  timed is what is checked, and no backward is run, or compiled, only to be checked at a shape where none is timed.
- **Criterion.** Per row, not over the whole tensor, so an error confined to one token cannot hide among the
  others: ``e_r = ‖impl_r − truth_r‖ / ‖truth_r‖`` over the rows of the last dimension (each element of a 1-D
  tensor is a row; the denominator is guarded, see below), judged twice: the worst row, ``max_r e_r``, and the
  typical row, ``median_r e_r``. The second exists for 16-bit blocks where a few rows of the reference's own run
  err by tens of percent for reasons the dtype imposes (a Spark neuron beside its threshold flips; a Chebyshev
  hidden activation rounds onto the clamp at ±1): their worst row would let an error of that size through in
  every row, while their typical row errs like any other variant's.
- **Tolerance.** ``allowed = 2·e_ref + FLOOR`` (by dtype, and by whether the quantity is per token or a parameter
  gradient) for each statistic, where ``e_ref`` is the same statistic for the reference run in the impl's dtype
  on the same draw, the largest of three runs: the tokens in their order, shuffled (a parameter gradient sums
  over tokens; an impl that sums in another order, as compiled code does, is as right as the reference), and,
  where gradients are checked, with every sum rounded as a sequential fp32 loop rounds it
  (:mod:`kanbench.harness.sequential_sums`: on a sum that cancels, such a loop errs tens of times more than
  torch's pairwise sum). The reference itself must give finite outputs and gradients on every draw, else every
  impl of that configuration is an ``error``.
- **Upstream gradient.** Random, seeded by the configuration; a variant may replace it (``gate_upstream``) where
  some of its fp32 gradients are decided by rounding rather than by the math: AF-KAN's batch min-max sends each
  extreme's whole gradient to whichever element rounds to the extreme, so its upstream is made orthogonal to the
  output's sensitivity to those extremes, and every gradient then no longer depends on the winner.

The row norm in the denominator is ``sqrt(‖truth_r‖² + (‖truth‖_rms / 4)²)``: a relative error ε in a row of
typical size reads as ε, and a row of near-zero norm cannot produce a huge ratio from rounding alone. The largest
error that can pass unseen is the worst-row allowance in fewer than half the rows of a quantity and the
typical-row allowance in the rest (README.md gives the measured values per dtype).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from kanbench import registry
from kanbench.harness.results import Config
from kanbench.harness.sequential_sums import SequentialSums
from kanbench.harness.workload import output_width, sample_input

# Added to twice the reference's own error, per dtype, for (per-token quantities: outputs and the input gradient;
# parameter gradients: sums over every token, whose rounding depends on the order a kernel sums in). Set from the
# largest excess over 2x the reference that kanbench's own impls show (the Triton kernels under the interpreter,
# every form and draw; the compiled impls), with headroom: fp32 1.9e-6 per token; bf16 4.9e-3 per token and 1.3e-2
# for the fused GR-KAN's coefficient gradients; fp16 2.8e-3 for parameter gradients. The largest, fp32 1.0e-5, is
# AF-KAN's interval ends and temperature (seven numbers per layer, each a sum over every token, input and basis
# that mostly cancels), in both its torch.compile impl and its Triton kernels: torch's CPU reduction of the
# reference sums pairwise, a kernel or an inductor loop sums sequentially, and on a cancelling sum that is several
# times the error whatever the order of the tokens. The 16-bit excesses above came from the interpreter's truncating
# bf16 conversion and from references that rounded every intermediate in the dtype; measured again with both fixed
# (kernels/interpreter_rounding.py, kanbench/variants/precision.py; 24 tokens, layer and block, every draw), no
# kernel or compiled impl exceeds twice the reference per token, and for parameter gradients the largest excess is
# bf16 6.8e-3 (Wav-KAN's Triton block, the first layer's bias). The 16-bit floors stay until a GPU run has measured
# the kernels' excess there (tensor cores, other summation orders). fp64 has no reference-in-dtype to compare with:
# an absolute floor.
FLOOR = {"fp64": (1e-10, 1e-10), "fp32": (4e-6, 3e-5), "fp16": (1e-3, 6e-3), "bf16": (6e-3, 1.6e-2)}
TAIL_SCALE = 3.0
FORWARD_ONLY = "forward only (no gradient is timed at this configuration)"
TRUTH_BYTES = 4 * 2**30  # the most per-token state (token_state, in float64) the truth keeps at once before chunking


@dataclass
class GateResult:
    ok: bool
    max_error: float
    message: str
    status: str = "ok"  # ok | mismatch (wrong numbers, missing work) | error (NaN/Inf, the reference broken)


def _rows(t: torch.Tensor) -> torch.Tensor:
    width = t.shape[-1] if t.dim() >= 2 else 1  # a 1-D tensor: each element is a row
    return t.detach().double().reshape(-1, width)


def rms_row_norm(t: torch.Tensor) -> float:
    rows = _rows(t)
    return float(rows.norm() / math.sqrt(rows.shape[0])) if rows.numel() else 0.0


@dataclass(frozen=True)
class RowErrors:
    """A quantity's row-wise relative errors, summarised: the worst row and the typical (median) row."""

    worst: float
    typical: float


def row_errors(value: torch.Tensor, truth: torch.Tensor, zero_scale: float = 0.0) -> RowErrors:
    """``e_r = ‖value_r − truth_r‖ / sqrt(‖truth_r‖² + (rms/4)²)`` over rows of the last dimension, rms being the
    root-mean-square row norm, as its maximum and its median over the rows (both inf if ``value`` is not finite or
    the shapes differ).

    A quantity whose truth is zero (to 1e-9 of ``zero_scale``: a gradient that cancels analytically, such as a bias
    followed by a normalisation) has no scale of its own; its rounding noise is then measured against
    ``zero_scale`` (the largest rms row norm among the gradients), as it would be inside a larger gradient."""
    if value.shape != truth.shape or not torch.isfinite(value.detach()).all():
        return RowErrors(float("inf"), float("inf"))
    value, truth = _rows(value), _rows(truth)
    if not value.numel():
        return RowErrors(0.0, 0.0)
    rms = rms_row_norm(truth)
    if rms <= 1e-9 * zero_scale:
        rms = zero_scale
    scale = (truth.norm(dim=1) ** 2 + (rms / 4) ** 2).sqrt()
    errors = (value - truth).norm(dim=1) / scale.clamp_min(1e-300)
    return RowErrors(float(errors.max()), float(errors.median()))


def rowwise_error(value: torch.Tensor, truth: torch.Tensor, zero_scale: float = 0.0) -> float:
    """The worst row's relative error (:func:`row_errors`)."""
    return row_errors(value, truth, zero_scale).worst


def gate_inputs(config: Config) -> list[tuple[str, torch.Tensor]]:
    """The draws (name, float64 input of the measured shape): typical, tails and, where declared, edges."""
    typical = sample_input(config, seed_offset=11, dtype=torch.float64)
    wide = sample_input(config, seed_offset=12, dtype=torch.float64)
    spec = registry.get_variant(config.variant)
    centre = 0.5 if spec.input_kind == "unit" else 0.0
    draws = [("typical", typical), ("tails", centre + TAIL_SCALE * (wide - centre))]
    if spec.edge_inputs is not None:
        edges = torch.tensor(spec.edge_inputs(**config.hparams), dtype=torch.float64)
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + 13)
        nudge = torch.tensor([0.0, 0.0, 1e-3, -1e-3], dtype=torch.float64)
        picks = edges[torch.randint(len(edges), typical.shape, generator=generator)]
        picks = picks + nudge[torch.randint(len(nudge), typical.shape, generator=generator)]
        keep = torch.rand(typical.shape, generator=generator) < 0.25  # a quarter typical values
        draws.append(("edges", torch.where(keep, typical.cpu(), picks).to(typical.device)))
    return draws


def _upstream(config: Config, x: torch.Tensor, draw: int) -> torch.Tensor:
    """The upstream gradient of a draw: seeded by the configuration, so a verdict is the same on every run."""
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + 101 + draw)
    return torch.randn(x.shape[0], output_width(config), generator=generator, dtype=torch.float64).to(x.device)


def _run(module: torch.nn.Module, x: torch.Tensor, upstream: torch.Tensor, backward: bool = True,
         rows: int | None = None) -> dict[str, torch.Tensor | None]:
    """Output (grad enabled), output under no_grad, input gradient and every parameter's gradient (None where the
    module produced none); with ``backward=False`` the output under no_grad alone. With ``rows``, over chunks of
    that many tokens (a token-independent reference, see :func:`truth_rows`): per-token results concatenated,
    parameter gradients accumulated over the chunks."""
    module.zero_grad(set_to_none=True)
    chunks = [slice(start, start + rows) for start in range(0, x.shape[0], rows)] if rows else [slice(None)]
    inference, outputs, input_grads = [], [], []
    for part in chunks:
        with torch.no_grad():
            inference.append(module(x[part].detach()))
        if not backward:
            continue
        xp = x[part].detach().clone().requires_grad_(True)
        y = module(xp)
        y.backward(upstream[part].to(y.dtype))
        outputs.append(y.detach())
        input_grads.append(xp.grad)
    if not backward:
        return {"output_no_grad": torch.cat(inference)}
    no_input_grad = any(g is None for g in input_grads)
    got: dict[str, torch.Tensor | None] = {"output": torch.cat(outputs), "output_no_grad": torch.cat(inference),
                                           "grad_input": None if no_input_grad else torch.cat(input_grads)}
    got.update({f"grad_{n}": p.grad for n, p in module.named_parameters() if p.requires_grad})
    module.zero_grad(set_to_none=True)
    return got


def truth_rows(config: Config) -> int | None:
    """Tokens per chunk for the truth and the reference-in-dtype runs, or None for all at once: only for a variant
    that declares its per-token state (``token_state``: its tokens are independent), and only where all tokens
    at once would keep more than TRUTH_BYTES in float64. The impl itself always runs at the measured shape."""
    per_layer, hp = config.spec.token_state, config.full_hparams
    if per_layer is None:
        return None
    state = per_layer(config.d_model, config.d_hidden, **hp)
    if config.form == "block":  # d_model → d_hidden → d_model
        state += per_layer(config.d_hidden, config.d_model, **hp)
    if state * 8 * config.tokens <= TRUTH_BYTES:
        return None
    return max(1, TRUTH_BYTES // (state * 8))


def _run_reordered(module: torch.nn.Module, x: torch.Tensor, upstream: torch.Tensor, draw: int,
                   backward: bool = True, rows: int | None = None) -> dict[str, torch.Tensor | None]:
    """:func:`_run` with the tokens in another order (per-token results put back in place): parameter gradients,
    sums over tokens, then add up in another order. Its error is as legitimate as the reference's own, so the
    tolerance takes the larger of the two (an impl that reassociates a long reduction differs by that much)."""
    if x.shape[0] < 2:
        return {}
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(7 + draw)).to(x.device)
    back = torch.argsort(order)
    got = _run(module, x[order], upstream[order], backward, rows)
    for key in ("output", "output_no_grad", "grad_input"):
        if got.get(key) is not None:
            got[key] = got[key][back]
    return got


def _run_sequential(module: torch.nn.Module, x: torch.Tensor, upstream: torch.Tensor,
                    backward: bool = True, rows: int | None = None) -> dict[str, torch.Tensor | None]:
    """:func:`_run` with every sum rounded as a loop adding one term after another into an fp32 accumulator would
    round it (:mod:`kanbench.harness.sequential_sums`): the order a kernel or compiled code may sum a parameter's
    gradient in, whose error on a cancelling sum is many times that of torch's pairwise one."""
    with SequentialSums():
        return _run(module, x, upstream, backward, rows)


def _non_finite(got: dict[str, torch.Tensor | None]) -> list[str]:
    return [k for k, v in got.items() if v is not None and not torch.isfinite(v).all()]


def allowance(config: Config, quantity: str, reference_error: float) -> float:
    """``2·e_ref + FLOOR``, the floor by the quantity's kind (see FLOOR)."""
    per_token, per_parameter = FLOOR[config.dtype]
    is_parameter = quantity.startswith("grad_") and quantity != "grad_input"
    return 2 * reference_error + (per_parameter if is_parameter else per_token)


def _out_of_range(config: Config, draw: str) -> bool:
    """Whether NaN/Inf from the reference in the configuration's dtype on ``draw`` means "outside the dtype's range"
    rather than a broken reference: only for 16-bit dtypes, only away from the typical draw (in fp16 a GR-KAN
    coefficient gradient, a sum of x⁵ over a group, overflows at |x| ≈ 10 whoever computes it)."""
    return draw != "typical" and config.dtype in ("fp16", "bf16")


def check_reference(config: Config, module: torch.nn.Module, backward: bool = True) -> GateResult:
    """For the reference itself: finite outputs and gradients on every draw (see :func:`_out_of_range`)."""
    notes = []
    for index, (draw, x) in enumerate(gate_inputs(config)):
        upstream = _upstream(config, x, index)
        bad = _non_finite(_run(module, x.to(config.torch_dtype), upstream, backward))
        if bad and _out_of_range(config, draw):
            notes.append(f"{draw} draw outside {config.dtype}'s range ({', '.join(bad)} overflow)")
        elif bad:
            return GateResult(False, float("inf"), f"reference gives NaN/Inf in {', '.join(bad)} on the {draw} "
                                                   "draw", "error")
    what = "outputs and gradients" if backward else FORWARD_ONLY + ": outputs"
    return GateResult(True, 0.0, "; ".join([f"reference impl: {what} finite", *notes]))


def _compare(got: dict, truth: dict, *references: dict
             ) -> tuple[dict[str, RowErrors], dict[str, RowErrors], list[str]]:
    """Errors of the impl and of the reference-in-dtype per quantity (each statistic the largest finite one over
    the reference runs given: in order, reordered, sequential), and the quantities present in one only."""
    missing = [f"{k} (reference has it, impl does not)" for k, v in truth.items()
               if v is not None and got.get(k) is None]
    missing += [f"{k} (impl has it, reference does not)" for k, v in got.items()
                if v is not None and truth.get(k) is None]
    common = [k for k, v in truth.items() if v is not None and got.get(k) is not None]
    grad_scale = max((rms_row_norm(truth[k]) for k in common if k.startswith("grad")), default=0.0)
    scale = {k: grad_scale if k.startswith("grad") else 0.0 for k in common}
    reference_errors = {}
    for k in common:
        errors = [row_errors(r[k], truth[k], scale[k]) for r in references if r.get(k) is not None]
        finite = [e for e in errors if math.isfinite(e.worst)]  # an overflowing extra run must not widen the allowance
        if finite:
            reference_errors[k] = RowErrors(max(e.worst for e in finite), max(e.typical for e in finite))
    return {k: row_errors(got[k], truth[k], scale[k]) for k in common}, reference_errors, missing


def check_against_reference(config: Config, module: torch.nn.Module, backward: bool = True) -> GateResult:
    """Compare ``module`` (the impl) with the reference loaded with the same weights on every draw (see the module
    docstring). The first failing check decides; otherwise the worst row's largest ratio of error to allowance is
    reported (``max_error``: that row's error)."""
    dtype = config.torch_dtype
    truth_module = config.build(registry.REFERENCE).double()
    truth_module.load_state_dict(module.state_dict())
    same_dtype = config.build(registry.REFERENCE)
    same_dtype.load_state_dict(module.state_dict())
    worst: tuple[float, float, str] = (-1.0, 0.0, "")  # (error / allowed, error, what)
    rows = truth_rows(config)
    notes = [f"truth and reference-in-dtype run over chunks of {rows} tokens (their state would not fit at once)"
             ] if rows else []
    for index, (draw, x) in enumerate(gate_inputs(config)):
        x = x.to(dtype).double()  # the impl's input, exactly
        upstream = _upstream(config, x, index)
        if backward and config.spec.gate_upstream is not None:
            upstream = config.spec.gate_upstream(truth_module, x, upstream)
        truth = _run(truth_module, x, upstream, backward, rows)
        reference = _run(same_dtype, x.to(dtype), upstream, backward, rows) if dtype != torch.float64 else {}
        reordered = (_run_reordered(same_dtype, x.to(dtype), upstream, index, backward, rows)
                     if dtype != torch.float64 else {})
        sequential = (_run_sequential(same_dtype, x.to(dtype), upstream, backward, rows)
                      if dtype != torch.float64 and backward else {})
        in_dtype = _non_finite(reference)
        if in_dtype and not _non_finite(truth) and _out_of_range(config, draw):
            notes.append(f"{draw} draw skipped: outside {config.dtype}'s range ({', '.join(in_dtype)} overflow "
                         "in the reference too)")
            continue
        bad = _non_finite(truth) + [f"{k} in {config.dtype}" for k in in_dtype]
        if bad:
            return GateResult(False, float("inf"), f"the reference gives NaN/Inf in {', '.join(bad)} on the {draw} "
                                                   "draw: nothing to check the impl against", "error")
        got = _run(module, x.to(dtype), upstream, backward)
        errors, reference_errors, missing = _compare(got, truth, reference, reordered, sequential)
        if missing:
            return GateResult(False, float("inf"), f"{draw} draw: missing work: {'; '.join(missing)}", "mismatch")
        for k, error in errors.items():
            if error.worst == float("inf"):
                return GateResult(False, error.worst, f"{draw} draw, {k}: non-finite (NaN/Inf) or wrong shape",
                                  "error")
            own = reference_errors.get(k, RowErrors(0.0, 0.0))
            for row, value, reference_value in (("worst", error.worst, own.worst),
                                                ("median", error.typical, own.typical)):
                allowed = allowance(config, k, reference_value)
                text = (f"{draw} draw, {k}: row-wise rel. error, {row} row {value:.3g} "
                        f"({'<=' if value <= allowed else '>'} {allowed:.3g} = 2 x the reference's own "
                        f"{config.dtype} error {reference_value:.3g} + floor)")
                if value > allowed:  # max_error stays the worst row's, as the row's metric (max_rel_error) says
                    return GateResult(False, error.worst, text, "mismatch")
                if row == "worst":
                    worst = max(worst, (value / allowed, value, text), key=lambda t: t[0])
    scope = [] if backward else [FORWARD_ONLY]
    return GateResult(True, worst[1], "; ".join([*scope, f"worst: {worst[2]}", *notes]))


def gate(config: Config, module: torch.nn.Module, backward: bool = True) -> GateResult:
    """The verdict on ``module``; ``backward=False`` checks the output under no_grad alone (see the module
    docstring)."""
    if config.impl == registry.REFERENCE:
        return check_reference(config, module, backward)
    return check_against_reference(config, module, backward)
