"""Spark FFN's sparse decode path as Triton kernels: compute only the neurons the predictor selects.

For B decode rows q (B × d_model), with K (d_model × d_ff) split at r and V (d_model × d_ff)
(kanbench/variants/spark_ffn.py has the math):

1. predictor ``z = q[:, :r] @ K[:r]`` — a dense (B × r) · (r × d_ff) matmul, left to cuBLAS (it reads K1 once, at
   bandwidth, like any GEMV);
2. ``_threshold_kernel``: one program per row, θ_b = mean(z_b) + std(z_b)·Q(1 - k/d_ff) in fp32;
3. ``_union_count_kernel`` and ``_union_compact_kernel``: the neurons active in any row (z_bj > θ_b), written in
   ascending order to an index list. Each program counts its block, then places its indices after the earlier
   blocks' counts (an exclusive prefix over the counts): deterministic, no atomics, no host sync — the active
   count stays on the device, so the whole path can be captured in a CUDA graph;
4. ``_gate_kernel``: for each active slot s with neuron j, ``h_bs = GELU(max(z_bj - θ_b, 0)) · (K2ᵀ q_b[r:])_j``,
   reading only the selected rows of K2ᵀ (every row of the batch at once, padded to a 16-row tl.dot tile);
5. ``_down_kernel``: ``y_b = Σ_s h_bs · Vᵀ[j_s, :]`` over the selected rows of Vᵀ, split over slot chunks into fp32
   partials that a fixed-order sum combines (deterministic).

K2ᵀ ((d_ff) × (d_model - r)) and Vᵀ (d_ff × d_model) are laid out row-major so that one neuron's weights are one
contiguous row: a gather of selected columns of K or V in their natural layout would read a 32-byte sector for
every 2-byte weight (at 8 % density the sectors of neighbouring active neurons rarely overlap) and cost more than
the dense matmul. The module keeps that layout as a cache (kernels/spark_ffn/__init__.py).

Programs beyond the active count exit at once, so launches are sized for the worst case (every neuron active)
without knowing the count on the host. A row inactive for a neuron that another row selected gets
GELU(max(z - θ, 0)) = GELU(0) = 0 there: the output equals the dense computation with the same masks.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kanbench.kernels.launch import check_launchable, dots_on_tensor_cores, needs_ieee_dot, sm_count
from kanbench.kernels.spark_ffn.decode_layout import MAX_DECODE_ROWS
from kanbench.kernels.spark_ffn.topk_triton import row_block, row_mean_std, row_mean_std_chunked, row_warps
from kanbench.kernels.triton_dot import dot

# Tiles: slots (active neurons) per program in the gate and down kernels, inner-dimension chunk, output columns per
# down program, neurons per compaction program, and the down kernel's slot-split programs per SM. Chosen for
# d_ff = 13824 at ~8 % (about 1100 active neurons, 70 gate programs of 16); not yet tuned on a GPU.
GATE_SLOTS = 16
GATE_CHUNK = 128
DOWN_SLOTS = 32
DOWN_COLS = 128
COMPACT_BLOCK = 1024
DOWN_PROGRAMS_PER_SM = 4
# On a GPU without Triton tensor-core dots (kernels/launch.py: Turing's T4, Volta) the products are FMAs on
# operands held in registers: compiled for sm_75, the 128-wide gate chunk and down columns spill 4–10 KB a thread at
# the 64-row tile (272 B at 16 rows); 32 wide, no row tile spills. Not yet measured on such a GPU.
CUDA_CORE_WIDTH = 32


def tile_widths(tensor_cores: bool) -> tuple[int, int]:
    """(the gate's inner chunk, the down kernel's output columns) where tl.dot does / does not use tensor cores."""
    return (GATE_CHUNK, DOWN_COLS) if tensor_cores else (CUDA_CORE_WIDTH, CUDA_CORE_WIDTH)


@triton.jit
def _threshold_kernel(
        # pointers: predictor scores z (B, d) in, θ (B,) out
        z_ptr, theta_ptr,
        # sizes; c = Q(1 - k/d), the standard-normal quantile
        d, c,
        # constexpr: the row block; whether the row is read in chunks
        BLOCK: tl.constexpr, CHUNKED: tl.constexpr):
    # -- one program per row: θ = mean(z) + c·std(z)
    row = tl.program_id(0).to(tl.int64)
    if CHUNKED:
        mean, std = row_mean_std_chunked(z_ptr, row * d, d, BLOCK)
    else:
        cols = tl.arange(0, BLOCK)
        mask = cols < d
        z = tl.load(z_ptr + row * d + cols, mask=mask, other=0.0).to(tl.float32)
        mean, std = row_mean_std(z, mask, d)
    tl.store(theta_ptr + row, mean + std * c)


@triton.jit
def _union_mask(z_ptr, theta_ptr, cols, col_ok, B, d):
    """1 where a neuron is active in at least one of the B rows, else 0 (int32, one entry per column)."""
    union = tl.zeros(cols.shape, dtype=tl.int32)
    for b in range(B):
        z = tl.load(z_ptr + b * d + cols, mask=col_ok, other=0.0).to(tl.float32)
        theta = tl.load(theta_ptr + b)
        union = union | tl.where(col_ok & (z > theta), 1, 0)
    return union


@triton.jit
def _union_count_kernel(
        # pointers: z (B, d) and θ (B,) in; count (blocks,) out
        z_ptr, theta_ptr, count_ptr,
        # sizes
        B, d,
        # constexpr: neurons per program
        BLOCK: tl.constexpr):
    # -- how many of this block's neurons are active in some row
    pid = tl.program_id(0)
    cols = pid * BLOCK + tl.arange(0, BLOCK)
    union = _union_mask(z_ptr, theta_ptr, cols, cols < d, B, d)
    tl.store(count_ptr + pid, tl.sum(union, axis=0))


@triton.jit
def _union_compact_kernel(
        # pointers: z, θ and the per-block counts in; the ascending index list and its length (total) out
        z_ptr, theta_ptr, count_ptr, index_ptr, total_ptr,
        # sizes
        B, d, n_blocks,
        # constexpr: neurons per program; the count array padded to a power of two
        BLOCK: tl.constexpr, BLOCKS: tl.constexpr):
    # -- this block's union mask, then its neurons' positions: the earlier blocks' counts + a running count
    pid = tl.program_id(0)
    cols = pid * BLOCK + tl.arange(0, BLOCK)
    union = _union_mask(z_ptr, theta_ptr, cols, cols < d, B, d)
    blocks = tl.arange(0, BLOCKS)
    counts = tl.load(count_ptr + blocks, mask=blocks < n_blocks, other=0)
    start = tl.sum(tl.where(blocks < pid, counts, 0), axis=0)  # exclusive prefix: the earlier blocks' neurons
    position = start + tl.cumsum(union, axis=0) - 1
    tl.store(index_ptr + position, cols, mask=union > 0)
    if pid == 0:
        tl.store(total_ptr, tl.sum(counts, axis=0))


@triton.jit
def _gate_kernel(
        # pointers: q (B, d_model), z (B, d), θ (B,), neuron-major K2ᵀ (d, d_model - r), the index list and its
        # length in; h (B, d) out, one column per selected slot
        q_ptr, z_ptr, theta_ptr, k2t_ptr, index_ptr, total_ptr, h_ptr,
        # sizes: rows, neurons, model width, predictor width
        B, d, d_model, r,
        # constexpr: rows, slots and inputs per tile; IEEE fp32 dots
        BLOCK_B: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_I: tl.constexpr, IEEE: tl.constexpr):
    # -- this program's slots of the index list; programs past its length (kept on the device) do nothing
    total = tl.load(total_ptr)
    s0 = tl.program_id(0) * BLOCK_S
    if s0 < total:
        n_in = d_model - r
        slots = s0 + tl.arange(0, BLOCK_S)
        slot_ok = slots < total
        neuron = tl.load(index_ptr + slots, mask=slot_ok, other=0)
        rows = tl.arange(0, BLOCK_B)
        row_ok = rows < B
        # -- K2ᵀq[r:] over the selected neurons' rows only
        acc = tl.zeros([BLOCK_B, BLOCK_S], dtype=tl.float32)
        for i0 in range(0, n_in, BLOCK_I):
            i = i0 + tl.arange(0, BLOCK_I)
            i_ok = i < n_in
            q = tl.load(q_ptr + rows[:, None] * d_model + r + i[None, :], mask=row_ok[:, None] & i_ok[None, :],
                        other=0.0)
            w = tl.load(k2t_ptr + neuron[None, :].to(tl.int64) * n_in + i[:, None],
                        mask=i_ok[:, None] & slot_ok[None, :], other=0.0)  # (I, S): neuron rows, contiguous in i
            acc += dot(q.to(w.dtype), w, IEEE)
        # -- h = GELU(max(z - θ, 0)) · (K2ᵀq[r:]) for those neurons
        both = row_ok[:, None] & slot_ok[None, :]
        z = tl.load(z_ptr + rows[:, None] * d + neuron[None, :], mask=both, other=0.0).to(tl.float32)
        theta = tl.load(theta_ptr + rows, mask=row_ok, other=0.0)
        s = tl.maximum(z - theta[:, None], 0.0)
        gelu = 0.5 * s * (1.0 + tl.math.erf(s * 0.7071067811865476))  # exact (erf) GELU, as F.gelu
        tl.store(h_ptr + rows[:, None] * d + slots[None, :], gelu * acc, mask=both)


@triton.jit
def _down_kernel(
        # pointers: h (B, d), neuron-major Vᵀ (d, d_model), the index list and its length in; fp32 partial sums
        # (splits, B, d_model) out
        h_ptr, vt_ptr, index_ptr, total_ptr, partial_ptr,
        # sizes
        B, d, d_model,
        # constexpr: rows, slots and output columns per tile; IEEE fp32 dots
        BLOCK_B: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, IEEE: tl.constexpr):
    # -- this program's output columns and its share of the slots (every n_split-th chunk)
    pid_split = tl.program_id(0)
    n_split = tl.num_programs(0)
    total = tl.load(total_ptr)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    col_ok = cols < d_model
    rows = tl.arange(0, BLOCK_B)
    row_ok = rows < B
    # -- Σ h·Vᵀ[neuron] over its slots, then one partial row per split (summed in a fixed order afterwards)
    acc = tl.zeros([BLOCK_B, BLOCK_D], dtype=tl.float32)
    for s0 in range(pid_split * BLOCK_S, total, n_split * BLOCK_S):
        slots = s0 + tl.arange(0, BLOCK_S)
        slot_ok = slots < total
        neuron = tl.load(index_ptr + slots, mask=slot_ok, other=0)
        h = tl.load(h_ptr + rows[:, None] * d + slots[None, :], mask=row_ok[:, None] & slot_ok[None, :], other=0.0)
        v = tl.load(vt_ptr + neuron[:, None].to(tl.int64) * d_model + cols[None, :],
                    mask=slot_ok[:, None] & col_ok[None, :], other=0.0)  # (S, D): rows of Vᵀ, contiguous
        acc += dot(h.to(v.dtype), v, IEEE)
    out = partial_ptr + (pid_split * B + rows[:, None]).to(tl.int64) * d_model + cols[None, :]
    tl.store(out, acc, mask=row_ok[:, None] & col_ok[None, :])


def _down_splits(device: torch.device, d_ff: int, col_programs: int) -> int:
    if device.type != "cuda":
        return 2  # the interpreter: enough to exercise the split and the second stage
    most = triton.cdiv(d_ff, DOWN_SLOTS)  # every neuron active
    return max(1, min(most, triton.cdiv(DOWN_PROGRAMS_PER_SM * sm_count(device), col_programs)))


def sparse_decode(q: torch.Tensor, K: torch.Tensor, k2_rows: torch.Tensor, v_rows: torch.Tensor, r: int,
                  c: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """y for decode rows ``q`` (B × d_model, B <= MAX_DECODE_ROWS) computing only the union of the rows' active neurons.

    ``K`` is the (d_model × d_ff) first-layer matrix (its first r rows are the predictor), ``k2_rows`` = K[r:]ᵀ and
    ``v_rows`` = Vᵀ laid out contiguously, ``c`` = Q(1 - k/d_ff). Returns (y, z, θ, active neuron indices (the
    first ``count`` entries are valid), count (a 1-element device tensor; reading it syncs)).
    """
    check_launchable(q, "spark decode triton")
    B, d_model = q.shape
    d_ff = K.shape[1]
    if not 1 <= B <= MAX_DECODE_ROWS:
        raise ValueError(f"spark decode triton: the decode path takes 1..{MAX_DECODE_ROWS} rows, got {B}; larger "
                         f"batches take the dense path (their active union is nearly every neuron).")
    if k2_rows.shape != (d_ff, d_model - r) or v_rows.shape != (d_ff, d_model):
        raise ValueError(f"spark decode triton: k2_rows must be K[r:]ᵀ ({d_ff}, {d_model - r}) and v_rows Vᵀ "
                         f"({d_ff}, {d_model}); got {tuple(k2_rows.shape)} and {tuple(v_rows.shape)}.")
    q = q.contiguous()
    device = q.device
    z = (q[:, :r] @ K[:r]).contiguous()  # the predictor, in the input dtype as the reference computes it
    theta = torch.empty(B, device=device, dtype=torch.float32)
    block, chunked = row_block(d_ff)
    _threshold_kernel[(B,)](z, theta, d_ff, c, BLOCK=block, CHUNKED=chunked, num_warps=row_warps(block))

    n_blocks = triton.cdiv(d_ff, COMPACT_BLOCK)
    counts = torch.empty(n_blocks, device=device, dtype=torch.int32)
    index = torch.empty(d_ff, device=device, dtype=torch.int32)
    count = torch.empty(1, device=device, dtype=torch.int32)
    _union_count_kernel[(n_blocks,)](z, theta, counts, B, d_ff, BLOCK=COMPACT_BLOCK)
    _union_compact_kernel[(n_blocks,)](z, theta, counts, index, count, B, d_ff, n_blocks, BLOCK=COMPACT_BLOCK,
                                       BLOCKS=triton.next_power_of_2(n_blocks))

    block_b = max(16, triton.next_power_of_2(B))
    ieee = needs_ieee_dot(k2_rows.dtype)
    chunk, cols = tile_widths(device.type != "cuda" or dots_on_tensor_cores(device))  # the interpreter: as sm_80+
    h = torch.empty(B, d_ff, device=device, dtype=torch.float32)
    _gate_kernel[(triton.cdiv(d_ff, GATE_SLOTS),)](q, z, theta, k2_rows, index, count, h, B, d_ff, d_model, r,
                                                   BLOCK_B=block_b, BLOCK_S=GATE_SLOTS, BLOCK_I=chunk,
                                                   IEEE=ieee)
    col_programs = triton.cdiv(d_model, cols)
    splits = _down_splits(device, d_ff, col_programs)
    partial = torch.empty(splits, B, d_model, device=device, dtype=torch.float32)
    _down_kernel[(splits, col_programs)](h, v_rows, index, count, partial, B, d_ff, d_model, BLOCK_B=block_b,
                                         BLOCK_S=DOWN_SLOTS, BLOCK_D=cols, IEEE=ieee)
    y = partial.sum(0) if splits > 1 else partial[0]  # fixed order: bit-identical across runs
    return y.to(q.dtype), z, theta, index, count
