"""The tiles of the fused KAN-layer kernels (kernels/kan_linear_triton.py) and how a launch picks one.

Each kernel names three tile sizes, with its own meaning:

    fwd   BLOCK_M rows × BLOCK_N outputs per program, stepping BLOCK_K feature columns
    dW    BLOCK_N outputs × BLOCK_K feature columns per program, stepping BLOCK_M rows
    dx    BLOCK_M rows × BLOCK_I inputs per program, stepping BLOCK_N outputs

With 16-bit operands on a GPU, Triton's autotuner times a small space per kernel and shape and keeps the fastest:
on Hopper ``tl.dot`` issues wgmma only from 64-row tiles (the former 32 × 32 × 32 tile ran on mma.sync), and
how much of the feature arithmetic a wide tile amortises is for the GPU to measure. Every tile in the spaces was
compiled for sm_90 with ``python -m kanbench.kernels.aot`` for all four families, with triton 3.9 (CI's) and 3.6
(torch 2.11's, the lent H100/H200 machines'): each fits an H100's shared memory, and none spills under 3.9; under
3.6 one spills 56 B (ReLU-KAN's dx at 64 × 128 × 32), which the autotuner's timing weighs like any other cost;
all emit wgmma. Wherever the products run on the CUDA cores (fp32 operands, IEEE; every operand on a GPU older
than sm_80, where Triton has no tensor-core dot), under the interpreter and in the unfused layer's dx
(kernels/kan_linear_unfused.py), each kernel keeps one fixed tile (Triton's default 4 warps and 3 stages): compiled
for sm_75 (T4) with 16-bit operands, each space's tiles spill 4–27 KB a thread (they hold a tensor-core tile's
accumulators and operands in registers), the fixed tile none.

Every dx tile has the same BLOCK_M: the ReLU family's per-row-block partial sums are allocated before the
autotuner picks a tile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import triton

from kanbench.kernels.launch import dots_on_tensor_cores

Tile = tuple[int, int, int, int, int]  # the kernel's three block sizes (order above), num_warps, num_stages

FIXED: dict[str, tuple[int, int, int]] = {"fwd": (32, 32, 32), "dW": (32, 32, 32), "dx": (32, 32, 32)}
SPACES: dict[str, list[Tile]] = {
    "fwd": [(128, 128, 64, 8, 3), (64, 256, 32, 8, 3), (64, 128, 64, 8, 3)],
    "dW": [(128, 128, 64, 8, 3), (64, 256, 32, 8, 3), (64, 128, 64, 8, 3)],
    "dx": [(64, 256, 32, 8, 3), (64, 128, 64, 8, 3), (64, 128, 32, 4, 3)],
}
# a new tile per problem size and per family (its feature arithmetic), not per call
KEY = ["M", "N", "d_in", "n_features", "FAMILY", "ORDER"]
_THIRD = {"fwd": "BLOCK_K", "dW": "BLOCK_K", "dx": "BLOCK_I"}


def blocks(kernel: str, sizes: Sequence[int]) -> dict[str, int]:
    """The kernel's block-size constexprs from a tile's first three numbers."""
    return {"BLOCK_M": sizes[0], "BLOCK_N": sizes[1], _THIRD[kernel]: sizes[2]}


def autotuned(kernel: str, fn: Any) -> Any:
    """``fn`` under Triton's autotuner over the kernel's space."""
    configs = [triton.Config(blocks(kernel, tile), num_warps=tile[3], num_stages=tile[4]) for tile in SPACES[kernel]]
    return triton.autotune(configs=configs, key=KEY)(fn)


def fixed_tile(ieee: bool, device: torch.device) -> bool:
    """Whether the kernels take their fixed tile: IEEE (fp32) products, the interpreter, a GPU without Triton
    tensor-core dots; the autotuned space is for 16-bit operands on tensor cores."""
    return ieee or not dots_on_tensor_cores(device)


def dx_block_m(fixed: bool) -> int:
    """The dx kernel's BLOCK_M, for sizing the partial sums before the launch."""
    return FIXED["dx"][0] if fixed else SPACES["dx"][0][0]


def launch(kernel: str, fn: Any, tuned: Any, grid: Callable[[dict[str, int]], tuple[int, ...]],
           args: Sequence[Any], flags: dict[str, Any], fixed: bool) -> None:
    """Launch ``fn`` at its fixed tile (``fixed``: fp32 operands, the interpreter, or the unfused layer's dx, which
    reads G and has no matmul to tune), else its autotuned twin."""
    if fixed:
        meta = blocks(kernel, FIXED[kernel])
        fn[grid(meta)](*args, **flags, **meta)
    else:
        tuned[grid](*args, **flags)
