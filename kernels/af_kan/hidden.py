"""AF-KAN's hidden row ``h = act(LayerNorm(w ⊙ S))`` as an autograd Function over the chunked row kernels
(kernels/af_kan/attention_triton.py, which has the math). Saved for backward: x and, per row, six fp32 statistics;
never the feature tensor."""

from __future__ import annotations

import torch
import triton

from kanbench.kernels.af_kan import attention_triton as kern
from kanbench.kernels.af_kan.pointwise_triton import ACTIVATIONS, FUNCS
from kanbench.kernels.launch import check_launchable, interpreted, sm_count

NORMS = {"batch": kern.BATCH, "sample": kern.SAMPLE, "none": kern.NONE}
CHUNK = 256  # columns of a row a program holds at once (2 per thread at 4 warps)
BACKWARD_WARPS = 8  # one column per thread: the backward's unrolled bases need ~120 registers even so (AOT, sm_90)
INTERPRETER_CHUNK = 8  # small chunks under the interpreter, so that the tests cross chunk boundaries


def _chunk(d_in: int) -> int:
    return min(INTERPRETER_CHUNK if interpreted() else CHUNK, triton.next_power_of_2(d_in))


def _programs(rows: int, device: torch.device, chunks: int = 1) -> int:
    """Row programs per launch, each looping over rows pid, pid + P, ... (about four per SM over all chunks on a
    GPU; under the interpreter fewer than the rows, so that the loop runs more than once)."""
    per_device = 3 if interpreted() else max(1, 4 * sm_count(device) // chunks)
    return max(1, min(rows, per_device))


class AFKANHidden(torch.autograd.Function):
    """``h`` of AF-KAN's global-attention reduction for x (N, d_in), computed chunk by chunk of each row."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, start: torch.Tensor, end: torch.Tensor, alpha: torch.Tensor,
                beta: torch.Tensor, temperature: torch.Tensor, gamma: torch.Tensor, delta: torch.Tensor,
                eps: float, kinds: tuple[int, int, int], fixed_extremes: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        act_id, func_id, norm = kinds
        M, d_in = x.shape
        chunk = _chunk(d_in)
        chunks = triton.cdiv(d_in, chunk)
        fixed = {"ACT": act_id, "FUNC": func_id, "N_BASES": start.numel(), "CHUNK": chunk}
        extremes = torch.empty(2, device=x.device, dtype=torch.float32)
        if norm == kern.BATCH and fixed_extremes is not None:  # eval mode's running extremes: constants
            extremes = fixed_extremes.detach().float().contiguous()
        elif norm == kern.BATCH:
            parts = torch.empty(_programs(M, x.device), 2, device=x.device, dtype=torch.float32)
            kern._batch_extremes_kernel[(parts.shape[0],)](x, start, end, parts, M, d_in, **fixed)
            extremes = torch.stack([parts[:, 0].min(), parts[:, 1].max()])  # on the device, no host read
        stats = torch.empty(M, kern.STATS, device=x.device, dtype=torch.float32)
        params = (start, end, alpha, beta, temperature)
        kern._row_stats_kernel[(_programs(M, x.device),)](x, *params, extremes, stats, M, d_in, eps, NORM=norm,
                                                          **fixed)
        h = torch.empty_like(x)
        kern._hidden_kernel[(_programs(M, x.device, chunks), chunks)](x, *params, gamma, delta, stats, h, M, d_in,
                                                                       **fixed)
        ctx.save_for_backward(x, *params, gamma, delta, stats)
        ctx.kinds, ctx.fixed_extremes = kinds, fixed_extremes is not None
        ctx.mark_non_differentiable(extremes)
        return h, extremes

    @staticmethod
    def backward(ctx, dh: torch.Tensor, _: torch.Tensor):
        x, start, end, alpha, beta, temperature, gamma, delta, stats = ctx.saved_tensors
        act_id, func_id, norm = ctx.kinds
        M, d_in = x.shape
        n = start.numel()
        chunk = _chunk(d_in)
        chunks = triton.cdiv(d_in, chunk)
        fixed = {"ACT": act_id, "FUNC": func_id, "N_BASES": n, "CHUNK": chunk}
        dh = dh.contiguous()
        params = (x, start, end, alpha, beta, temperature, gamma, delta, stats, dh)
        sums = torch.empty(M, 3, device=x.device, dtype=torch.float32)
        kern._backward_sums_kernel[(_programs(M, x.device),)](*params, sums, M, d_in, **fixed)
        programs = _programs(M, x.device, chunks)
        dx = torch.empty_like(x)
        vec = torch.empty(programs, 2, d_in, device=x.device, dtype=torch.float32)
        small = torch.empty(programs * chunks, 3 * n + 2, device=x.device, dtype=torch.float32)
        ties = torch.empty(M, chunks, 4, device=x.device, dtype=torch.float32)
        block_j = triton.next_power_of_2(n)
        kern._backward_kernel[(programs, chunks)](*params, sums, dx, vec, small, ties, M, d_in, NORM=norm,
                                                  BLOCK_J=block_j, num_warps=BACKWARD_WARPS, **fixed)
        vec, small = vec.sum(0), small.sum(0)  # the programs' partial sums, in a fixed order
        if norm != kern.NONE and not ctx.fixed_extremes:  # the min and max's gradients, shared by the elements equal
            per_row = ties.sum(1)
            grads, counts = per_row[:, :2], per_row[:, 2:]
            if norm == kern.BATCH:
                grads = grads.sum(0, keepdim=True)
                share = grads / counts.sum(0, keepdim=True).clamp_min(1)
            else:
                share = grads / counts.clamp_min(1)
            coefficients = torch.cat([share.expand(M, 2), counts.sum(1, keepdim=True)], dim=1).contiguous()
            parts = torch.empty(_programs(M, x.device), 2 * n, device=x.device, dtype=torch.float32)
            kern._ties_kernel[(parts.shape[0],)](x, start, end, stats, coefficients, dx, parts, M, d_in,
                                                 BLOCK_J=block_j, **fixed)
            small[:2 * n] += parts.sum(0)

        def like(value: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
            return value.reshape(param.shape).to(param.dtype)

        return (dx, like(small[:n], start), like(small[n:2 * n], end), like(small[2 * n:3 * n], alpha),
                like(small[3 * n], beta), like(small[3 * n + 1], temperature), like(vec[0], gamma),
                like(vec[1], delta), None, None, None)


def af_kan_hidden(x: torch.Tensor, start: torch.Tensor, end: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor,
                  temperature: torch.Tensor, gamma: torch.Tensor, delta: torch.Tensor, eps: float, activation: str,
                  func: str, func_norm: str, fixed_extremes: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """AF-KAN's hidden row ``h`` (N, d_in) for inputs ``x`` (N, d_in): ``start``/``end`` (G+k,), ``alpha`` (G+k,)
    and ``beta`` (1,) the attention Linear, ``temperature`` = max(τ, 1) as a tensor, ``gamma``/``delta``/``eps`` the
    LayerNorm's. The output layer is ``h·Wᵀ``. Returns h and the (min, max) that ``func_norm='batch'`` scaled by:
    the batch's, or ``fixed_extremes`` when given (eval mode's running extremes: no gradient flows to them)."""
    check_launchable(x, "af_kan (triton)")
    kinds = (ACTIVATIONS[activation], FUNCS[func], NORMS[func_norm])
    params = [p.contiguous() for p in (start, end, alpha, beta, temperature.reshape(1), gamma, delta)]
    return AFKANHidden.apply(x.contiguous(), *params, eps, kinds, fixed_extremes)
