"""Tune and explain GR-KAN's Triton rational on a GPU: kernel time with and without host overhead (CUDA graph
replay), for several tile shapes, against the bandwidth floor. Not part of the published figures (those come
from `kanbench run --preset kat-b`); this is the notebook behind the tile choice in grkan_rational_triton.py.

    python tools/bench_grkan_rational.py
"""

from __future__ import annotations

import functools
import itertools

import torch
import triton.testing

import kanbench.kernels.grkan_rational_triton as kr


def graphed(fn):
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def bench(fn) -> float:
    return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")


def main() -> None:
    src = torch.randn(1 << 28, device="cuda")
    dst = torch.empty_like(src)
    copy_ms = bench(lambda: dst.copy_(src))
    bandwidth = 2 * src.numel() * 4 / (copy_ms * 1e-3)
    print(f"copy bandwidth {bandwidth / 1e12:.3f} TB/s  ({torch.cuda.get_device_name()}, torch {torch.__version__},"
          f" triton {triton.__version__})")
    g = torch.Generator(device="cuda").manual_seed(0)
    for D, dtype in itertools.product((768, 3072), (torch.float32, torch.bfloat16)):
        N = 64 * 197
        x = torch.randn(N, D, device="cuda", generator=g).to(dtype)
        dy = torch.randn(N, D, device="cuda", generator=g).to(dtype)
        a = torch.randn(1, 6, device="cuda", generator=g) * 0.5
        b = torch.rand(8, 4, device="cuda", generator=g) + 0.1
        size = x.element_size() * N * D
        floor_f, floor_b = 2 * size / bandwidth * 1e3, 3 * size / bandwidth * 1e3
        print(f"\n(64,197,{D}) {str(dtype)[6:]}: floor fwd {floor_f:.4f} ms, bwd {floor_b:.4f} ms, "
              f"fwd+bwd {floor_f + floor_b:.4f} ms")
        for tile in (2048, 4096, 8192):
            kr.FWD_TILE = tile
            fwd = functools.partial(kr.rational_forward, x, a, b)
            print(f"  fwd tile {tile:5d}: eager {bench(fwd):.4f}  graph {bench(graphed(fwd)):.4f} ms")
        kr.FWD_TILE = 4096
        for tile, warps, per_sm in itertools.product((512, 1024, 2048), (4, 8), (4,)):
            kr.BWD_TILE, kr.BWD_WARPS, kr.BWD_PROGRAMS_PER_SM = tile, warps, per_sm
            bwd = functools.partial(kr.rational_backward, dy, x, a, b)
            print(f"  bwd tile {tile:5d} warps {warps} per-SM {per_sm}: eager {bench(bwd):.4f}  "
                  f"graph {bench(graphed(bwd)):.4f} ms")


if __name__ == "__main__":
    main()
