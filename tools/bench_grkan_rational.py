"""The notebook behind the tile choice in kernels/grkan/rational_triton.py: on a GPU, time the backward kernel
alone for several (tile, warps, programs per SM) with its registers and spills, the second-stage reduction, and the
forward, against the bandwidth floor. Published figures come from `kanbench run --preset kat-b`, not from here.

    python tools/bench_grkan_rational.py
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.testing

import kanbench.kernels.grkan.rational_triton as kr

CONFIGS = [(512, 4, 4), (512, 2, 8), (1024, 4, 2), (1024, 4, 4), (1024, 8, 4), (4096, 8, 2)]


def bench(fn) -> float:
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


def stage_two_torch(partial: torch.Tensor, groups: int) -> torch.Tensor:
    """The torch second stage the kernels replaced (kept for the comparison)."""
    return partial.sum(0).view(groups, -1, kr.N_TERMS).sum(1)


def main() -> None:
    src = torch.randn(1 << 28, device="cuda")
    dst = torch.empty_like(src)
    bandwidth = 2 * src.numel() * 4 / (bench(functools.partial(dst.copy_, src)) * 1e-3)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    print(f"{torch.cuda.get_device_name()}: copy {bandwidth / 1e12:.3f} TB/s, torch {torch.__version__}, "
          f"triton {triton.__version__}")
    g = torch.Generator(device="cuda").manual_seed(0)
    N, groups = 64 * 197, 8
    for D in (768, 3072):
        x = torch.randn(N, D, device="cuda", generator=g)
        dy = torch.randn(N, D, device="cuda", generator=g)
        a = torch.randn(1, 6, device="cuda", generator=g) * 0.5
        b = torch.rand(groups, 4, device="cuda", generator=g) + 0.1
        dx = torch.empty_like(x)
        size = 4 * N * D
        forward = bench(functools.partial(kr.rational_forward, x, a, b))
        print(f"\n(64, 197, {D}) fp32: floor fwd {2 * size / bandwidth * 1e3:.4f} ms, "
              f"bwd {3 * size / bandwidth * 1e3:.4f} ms; forward {forward:.4f} ms")
        for tile, warps, per_sm in CONFIGS:
            block_n, block_d = kr._blocks(D, tile)
            rows = max(1, min(triton.cdiv(N, block_n), triton.cdiv(per_sm * sms, triton.cdiv(D, block_d))))
            partial = torch.empty(rows, D, kr.N_TERMS, device="cuda")
            launch = functools.partial(kr._rational_bwd_kernel[(rows, triton.cdiv(D, block_d))], x, dy, a, b, dx,
                                       partial, N, D, D // groups, 0, BLOCK_N=block_n, BLOCK_D=block_d,
                                       num_warps=warps)
            compiled = launch()
            print(f"  bwd tile {tile:4d} warps {warps} per-SM {per_sm}: kernel {bench(launch):.4f} ms, "
                  f"{compiled.n_regs} registers, {compiled.n_spills} spills; stage two: torch "
                  f"{bench(functools.partial(stage_two_torch, partial, groups)):.4f} ms, triton "
                  f"{bench(functools.partial(kr.coefficient_gradients, partial, b, True)):.4f} ms")


if __name__ == "__main__":
    main()
