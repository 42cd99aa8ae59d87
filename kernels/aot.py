"""Compile every Triton kernel of kanbench for a named NVIDIA GPU without one (ahead of time, compile only).

The interpreter checks what the kernels compute, not whether they compile: a type error, an op the backend lacks
or a tile that does not fit only shows on a GPU. Triton's compiler runs on any machine given a target, so this
compiles each kernel with the launch parameters its wrapper uses, down to a cubin with Triton's bundled ptxas, and
reports shared memory and (``python -m kanbench.kernels.aot``) registers and spills from ``ptxas -v``.

    python -m kanbench.kernels.aot [sm_90] [--all-configs] [--jobs N]
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import triton

from kanbench.kernels import kan_linear_tiles as kan_tiles
from kanbench.kernels import kan_linear_triton as kan
from kanbench.kernels import kan_linear_unfused as unfused
from kanbench.kernels.af_kan import attention_triton as afkan
from kanbench.kernels.af_kan import hidden as afkan_hidden
from kanbench.kernels.grkan import fused_triton as fused
from kanbench.kernels.grkan import rational_triton as rational
from kanbench.kernels.launch import tensor_core_dots
from kanbench.kernels.spark_ffn import decode_triton as decode
from kanbench.kernels.spark_ffn import topk_triton as topk
from kanbench.kernels.wav_kan import wavelet_triton as wav


@dataclass
class KernelSpec:
    """One kernel with the argument types and constexprs of one real launch."""

    name: str
    fn: Any
    types: dict[str, str]  # argument name -> Triton type ("*bf16", "i32", "fp32"); constexprs are given below
    constexprs: dict[str, Any]
    options: dict[str, int] = field(default_factory=dict)  # num_warps, num_stages
    # Integer arguments that a real launch passes as multiples of 16: Triton specialises on that (as on 16-byte
    # aligned pointers, assumed for every pointer), and it decides vector widths and layouts. Arguments that
    # are 1 in a real launch (unit strides) go in ``constexprs``, as Triton specialises them.
    divisible: tuple[str, ...] = ()


def _ptr(dtype: str, *names: str) -> dict[str, str]:
    return {n: f"*{dtype}" for n in names}


def _ints(*names: str) -> dict[str, str]:
    return {n: "i32" for n in names}


LABELS = {fused.ON_A: "fwd F(X)·Wᵀ", fused.ON_A_ROWS: "dWᵀ F(X)ᵀ·dY"}


def grkan_specs(dtype: str = "bf16", width: int = 768, all_configs: bool = False, arch: str = "sm_90"
                ) -> list[KernelSpec]:
    fwd_n, fwd_d = rational._blocks(width, rational.FWD_TILE)
    bwd_n, bwd_d = rational._blocks(width, rational.BWD_TILE)
    coefficients = _ptr("fp32", "a_ptr", "b_ptr")
    specs = [
        KernelSpec("grkan rational fwd", rational._rational_fwd_kernel,
                   {**_ptr(dtype, "x_ptr"), **coefficients, **_ptr(dtype, "y_ptr"),
                    **_ints("N", "D", "group_width", "a_stride_group")},
                   {"BLOCK_N": fwd_n, "BLOCK_D": fwd_d}, divisible=("N", "D", "group_width")),
        KernelSpec("grkan rational bwd", rational._rational_bwd_kernel,
                   {**_ptr(dtype, "x_ptr", "dy_ptr"), **coefficients, **_ptr(dtype, "dx_ptr"),
                    **_ptr("fp32", "partial_ptr"), **_ints("N", "D", "group_width", "a_stride_group")},
                   {"BLOCK_N": bwd_n, "BLOCK_D": bwd_d, "ZERO_SIGN": 1.0}, {"num_warps": rational.BWD_WARPS},
                   divisible=("N", "D", "group_width")),
        KernelSpec("grkan rational bwd stage 2a", rational._sum_partials_kernel,
                   {**_ptr("fp32", "partial_ptr", "out_ptr"), **_ints("R", "M")}, {"BLOCK": rational.SUM_BLOCK},
                   divisible=("M",)),
        KernelSpec("grkan rational bwd stage 2b", rational._group_gradients_kernel,
                   {**_ptr("fp32", "sums_ptr", "b_ptr", "da_ptr", "db_ptr"), **_ints("groups", "group_width")},
                   {"SHARED": True, "BLOCK_W": 64, "ZERO_SIGN": 1.0}, divisible=("group_width",)),
    ]
    space = fused._configs(tensor_core_dots(arch))
    configs = space if all_configs else space[2:3]  # 128 x 128 x 32, 4 warps; CUDA cores: 64 x 32 x 16
    for config in configs:
        for on in (fused.ON_A, fused.ON_A_ROWS):
            for operands in ("fp32", dtype):
                tiles = "x".join(str(config.kwargs[k]) for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
                # the unit strides of the real launches: forward F(X)·Wᵀ (X and W row-major), weight gradient
                # F(X)ᵀ·dY (X read transposed, dWᵀ stored transposed)
                unit = {fused.ON_A: ("stride_ak", "stride_bk", "stride_cn"),
                        fused.ON_A_ROWS: ("stride_am", "stride_bn", "stride_cm")}[on]
                strides = [n for n in ("stride_am", "stride_ak", "stride_bk", "stride_bn", "stride_cm", "stride_cn")
                           if n not in unit]
                specs.append(KernelSpec(
                    f"grkan fused matmul {LABELS[on]} {operands} {tiles}",
                    fused._fused_matmul_kernel,
                    {**_ptr(operands, "a_ptr", "b_ptr", "c_ptr", "bias_ptr"), **_ptr("fp32", "num_ptr", "den_ptr"),
                     **_ints("M", "N", "K", *strides, "group_width", "num_stride_group")},
                    {"RATIONAL_ON": on, "HAS_BIAS": True, "IEEE": operands == "fp32", **config.kwargs,
                     **{n: 1 for n in unit}},
                    {"num_warps": config.num_warps, "num_stages": config.num_stages},
                    divisible=("M", "N", "K", *strides, "group_width")))
    return specs


def spark_specs(dtype: str = "bf16", d_ff: int = 13824, d_model: int = 2304, arch: str = "sm_90"
                ) -> list[KernelSpec]:
    specs = []
    for length, label in ((d_ff, "one block"), (4 * topk.MAX_ROW_BLOCK, "chunked")):
        block, chunked = topk.row_block(length)
        warps = {"num_warps": topk.row_warps(block)}
        row = {"BLOCK": block, "CHUNKED": chunked}
        specs += [
            KernelSpec(f"spark top-k fwd ({label})", topk._topk_fwd_kernel,
                       {**_ptr(dtype, "z_ptr", "out_ptr"), **_ptr("fp32", "mean_ptr", "std_ptr"), "d": "i32",
                        "c": "fp32"}, row, warps, divisible=("d",)),
            KernelSpec(f"spark top-k bwd ({label})", topk._topk_bwd_kernel,
                       {**_ptr(dtype, "z_ptr", "g_ptr"), **_ptr("fp32", "mean_ptr", "std_ptr"), **_ptr(dtype, "dz_ptr"),
                        "d": "i32", "c": "fp32"}, row, warps, divisible=("d",)),
            KernelSpec(f"spark decode threshold ({label})", decode._threshold_kernel,
                       {**_ptr(dtype, "z_ptr"), **_ptr("fp32", "theta_ptr"), "d": "i32", "c": "fp32"}, row, warps,
                       divisible=("d",)),
        ]
    n_blocks = triton.cdiv(d_ff, decode.COMPACT_BLOCK)
    specs += [
        KernelSpec("spark decode union count", decode._union_count_kernel,
                   {**_ptr(dtype, "z_ptr"), **_ptr("fp32", "theta_ptr"), **_ptr("i32", "count_ptr"),
                    **_ints("B", "d")}, {"BLOCK": decode.COMPACT_BLOCK}, divisible=("d",)),
        KernelSpec("spark decode union compact", decode._union_compact_kernel,
                   {**_ptr(dtype, "z_ptr"), **_ptr("fp32", "theta_ptr"), **_ptr("i32", "count_ptr", "index_ptr",
                                                                               "total_ptr"),
                    **_ints("B", "d", "n_blocks")},
                   {"BLOCK": decode.COMPACT_BLOCK, "BLOCKS": triton.next_power_of_2(n_blocks)}, divisible=("d",)),
    ]
    chunk, cols = decode.tile_widths(tensor_core_dots(arch))
    for rows in (16, 64):  # the tl.dot row tile: batch 1..16, and the largest decode batch
        specs += [
            KernelSpec(f"spark decode gate ({rows}-row tile)", decode._gate_kernel,
                       {**_ptr(dtype, "q_ptr", "z_ptr"), **_ptr("fp32", "theta_ptr"), **_ptr(dtype, "k2t_ptr"),
                        **_ptr("i32", "index_ptr", "total_ptr"), **_ptr("fp32", "h_ptr"),
                        **_ints("B", "d", "d_model", "r")},
                       {"BLOCK_B": rows, "BLOCK_S": decode.GATE_SLOTS, "BLOCK_I": chunk, "IEEE": False},
                       divisible=("d", "d_model", "r")),
            KernelSpec(f"spark decode down ({rows}-row tile)", decode._down_kernel,
                       {**_ptr("fp32", "h_ptr"), **_ptr(dtype, "vt_ptr"), **_ptr("i32", "index_ptr", "total_ptr"),
                        **_ptr("fp32", "partial_ptr"), **_ints("B", "d", "d_model")},
                       {"BLOCK_B": rows, "BLOCK_S": decode.DOWN_SLOTS, "BLOCK_D": cols, "IEEE": False},
                       divisible=("d", "d_model")),
        ]
    return specs


def kan_linear_specs(dtype: str = "bf16", arch: str = "sm_90") -> list[KernelSpec]:
    """The fused KAN-layer kernels (kernels/kan_linear_triton.py) for every family at its variant's default order
    (B-spline order 3, Chebyshev degree 5, Fourier 10 frequencies) at the tiles their wrapper launches on ``arch``:
    fp32 operands (IEEE dots) at the fixed tile, ``dtype`` operands at every tile of the autotuner's space
    (kernels/kan_linear_tiles.py), or at the fixed tile where ``arch`` has no Triton tensor-core dot."""
    sizes = {**_ints("M", "N", "d_in", "n_features"), "r": "fp32", "t0": "fp32", "h": "fp32"}
    kernels = {"fwd": kan._forward_kernel, "dW": kan._weight_grad_kernel, "dx": kan._input_grad_kernel}
    specs = []
    families = ((kan.RELU, "relu_kan", 1), (kan.BSPLINE, "bspline_kan", 3), (kan.CHEBY, "cheby_kan", 5),
                (kan.FOURIER, "fourier_kan", 10))
    for family, name, order in families:
        for operands in ("fp32", dtype):
            types = {
                "fwd": {**_ptr(operands, "x_ptr", "s_ptr", "e_ptr", "w_ptr", "bias_ptr", "y_ptr"), **sizes},
                "dW": {**_ptr(operands, "x_ptr", "s_ptr", "e_ptr", "dy_ptr"), **_ptr("fp32", "dw_ptr"), **sizes},
                "dx": {**_ptr(operands, "x_ptr", "s_ptr", "e_ptr", "w_ptr", "dy_ptr", "g_ptr", "dx_ptr"),
                       **_ptr("fp32", "ds_part_ptr", "de_part_ptr"), **sizes},
            }
            fixed = {"FAMILY": family, "ORDER": order, "IEEE": operands == "fp32"}
            for kernel, fn in kernels.items():
                extra = {"HAS_BIAS": family != kan.BSPLINE} if kernel == "fwd" else {}
                extra |= {"G_GIVEN": False} if kernel == "dx" else {}
                candidates = (kan_tiles.SPACES[kernel] if operands != "fp32" and tensor_core_dots(arch)
                              else [(*kan_tiles.FIXED[kernel], 4, 3)])
                for tile in candidates:
                    specs.append(KernelSpec(
                        f"{name} fused {kernel} {operands} {'x'.join(map(str, tile[:3]))}", fn, types[kernel],
                        {**fixed, **extra, **kan_tiles.blocks(kernel, tile)},
                        {"num_warps": tile[3], "num_stages": tile[4]}, divisible=("M", "N", "d_in")))
            # the unfused layer (kernels/kan_linear_unfused.py): the feature pass, and dx reading G
            specs.append(KernelSpec(
                f"{name} unfused features {operands}", unfused._features_kernel,
                {**_ptr(operands, "x_ptr", "s_ptr", "e_ptr", "phi_ptr"), **_ints("M", "d_in", "n_features"),
                 "r": "fp32", "t0": "fp32", "h": "fp32"},
                {"FAMILY": family, "ORDER": order, "BLOCK_M": unfused.BLOCK_M, "BLOCK_K": unfused.BLOCK_K},
                divisible=("M", "d_in")))
            specs.append(KernelSpec(
                f"{name} unfused dx {operands}", kan._input_grad_kernel, types["dx"],
                {**fixed, "G_GIVEN": True, **kan_tiles.blocks("dx", kan_tiles.FIXED["dx"])},
                divisible=("M", "N", "d_in")))
    return specs


def wav_kan_specs(dtype: str = "bf16") -> list[KernelSpec]:
    """Wav-KAN's wavelet-sum kernels (kernels/wav_kan/wavelet_triton.py) at the wrapper's tiles, fp32 and ``dtype``."""
    tiles = {"BLOCK_M": wav.BLOCK_M, "BLOCK_N": wav.BLOCK_N, "BLOCK_I": wav.BLOCK_I}
    sizes = _ints("M", "N", "d_in")
    specs = []
    for operands in ("fp32", dtype):
        edges = _ptr(operands, "t_ptr", "s_ptr", "w_ptr")
        specs += [
            KernelSpec(f"wav_kan wavelet fwd {operands}", wav._forward_kernel,
                       {**_ptr(operands, "x_ptr"), **edges, **_ptr(operands, "y_ptr"), **sizes}, tiles,
                       divisible=("M", "N", "d_in")),
            KernelSpec(f"wav_kan wavelet dx {operands}", wav._input_grad_kernel,
                       {**_ptr(operands, "x_ptr"), **edges, **_ptr(operands, "dy_ptr", "dx_ptr"), **sizes}, tiles,
                       divisible=("M", "N", "d_in")),
            KernelSpec(f"wav_kan wavelet dw dt ds {operands}", wav._edge_grad_kernel,
                       {**_ptr(operands, "x_ptr"), **edges, **_ptr(operands, "dy_ptr"),
                        **_ptr("fp32", "dt_ptr", "ds_ptr", "dw_ptr"), **sizes}, tiles, divisible=("M", "N", "d_in")),
        ]
    return specs


def af_kan_specs(dtype: str = "bf16", widths: tuple[int, ...] = (768, 3072)) -> list[KernelSpec]:
    """AF-KAN's row kernels (kernels/af_kan/attention_triton.py) at the paper's defaults (SiLU, quad1, G + k = 6,
    'batch' min-max) as the wrapper launches them for the ffn-768 block's two layer widths."""
    fixed = {"ACT": afkan_hidden.ACTIVATIONS["silu"], "FUNC": afkan_hidden.FUNCS["quad1"], "N_BASES": 6}
    params = _ptr(dtype, "s_ptr", "e_ptr", "alpha_ptr", "beta_ptr", "t_ptr")
    norm = _ptr(dtype, "gamma_ptr", "delta_ptr")
    specs = []
    for width in widths:
        chunk = {"CHUNK": afkan_hidden._chunk(width)}
        sizes = {**_ints("M", "d_in"), "eps": "fp32"}
        specs += [
            KernelSpec(f"af_kan batch min/max d_in={width}", afkan._batch_extremes_kernel,
                       {**_ptr(dtype, "x_ptr", "s_ptr", "e_ptr"), **_ptr("fp32", "part_ptr"), **_ints("M", "d_in")},
                       {**fixed, **chunk}, divisible=("d_in",)),
            KernelSpec(f"af_kan row stats d_in={width}", afkan._row_stats_kernel,
                       {**_ptr(dtype, "x_ptr"), **params, **_ptr("fp32", "range_ptr", "stats_ptr"), **sizes},
                       {**fixed, "NORM": afkan.BATCH, **chunk}, divisible=("d_in",)),
            KernelSpec(f"af_kan hidden d_in={width}", afkan._hidden_kernel,
                       {**_ptr(dtype, "x_ptr"), **params, **norm, **_ptr("fp32", "stats_ptr"), **_ptr(dtype, "h_ptr"),
                        **_ints("M", "d_in")}, {**fixed, **chunk}, divisible=("d_in",)),
            KernelSpec(f"af_kan bwd sums d_in={width}", afkan._backward_sums_kernel,
                       {**_ptr(dtype, "x_ptr"), **params, **norm, **_ptr("fp32", "stats_ptr"), **_ptr(dtype, "dh_ptr"),
                        **_ptr("fp32", "sums_ptr"), **_ints("M", "d_in")}, {**fixed, **chunk}, divisible=("d_in",)),
            KernelSpec(f"af_kan bwd d_in={width}", afkan._backward_kernel,
                       {**_ptr(dtype, "x_ptr"), **params, **norm, **_ptr("fp32", "stats_ptr"), **_ptr(dtype, "dh_ptr"),
                        **_ptr("fp32", "sums_ptr"), **_ptr(dtype, "dx_ptr"),
                        **_ptr("fp32", "vec_part_ptr", "small_part_ptr", "tie_ptr"), **_ints("M", "d_in")},
                       {**fixed, "NORM": afkan.BATCH, "BLOCK_J": 8, **chunk},
                       {"num_warps": afkan_hidden.BACKWARD_WARPS}, divisible=("d_in",)),
            KernelSpec(f"af_kan bwd ties d_in={width}", afkan._ties_kernel,
                       {**_ptr(dtype, "x_ptr", "s_ptr", "e_ptr"), **_ptr("fp32", "stats_ptr", "coef_ptr"),
                        **_ptr(dtype, "dx_ptr"), **_ptr("fp32", "part_ptr"), **_ints("M", "d_in")},
                       {**fixed, "BLOCK_J": 8, **chunk}, divisible=("d_in",)),
        ]
    return specs


def compile_spec(spec: KernelSpec, arch: str = "sm_90") -> Any:
    """The compiled kernel (its ``asm`` holds ttir ... ptx, cubin; ``metadata.shared`` its shared memory)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    capability = int(arch.removeprefix("sm_"))
    signature = {**spec.types, **{name: "constexpr" for name in spec.constexprs}}
    aligned = [name for name, kind in spec.types.items() if kind.startswith("*")] + list(spec.divisible)
    attrs = {(spec.fn.arg_names.index(name),): [["tt.divisibility", 16]] for name in aligned}
    source = ASTSource(fn=spec.fn, signature=signature, constexprs=spec.constexprs, attrs=attrs)
    return triton.compile(source, target=GPUTarget("cuda", capability, 32), options=spec.options)


def ptxas_usage(kernel: Any, arch: str = "sm_90") -> tuple[int, int]:
    """(registers, spill bytes) as Triton's bundled ptxas reports them for the kernel's PTX."""
    from triton.backends.nvidia import compiler as nvidia

    capability = int(arch.removeprefix("sm_"))
    try:
        tool = nvidia.get_ptxas(capability)  # triton >= 3.7 picks the ptxas by architecture
    except TypeError:
        tool = nvidia.get_ptxas()
    ptxas = tool.path if hasattr(tool, "path") else tool[0]
    with tempfile.TemporaryDirectory() as tmp:
        ptx = Path(tmp) / "kernel.ptx"
        ptx.write_text(kernel.asm["ptx"])
        # the PTX's own target: Triton compiles for the arch-specific sm_90a, sm_100a, sm_120a from Hopper on
        out = subprocess.run([ptxas, f"-arch={nvidia.sm_arch_from_capability(capability)}", "-v", str(ptx), "-o",
                              str(Path(tmp) / "k.cubin")],
                             capture_output=True, text=True, check=True).stderr
    registers = int(re.search(r"Used (\d+) registers", out).group(1))
    spills = sum(int(v) for v in re.findall(r"(\d+) bytes spill (?:stores|loads)", out))
    return registers, spills


def usage(spec: KernelSpec, arch: str) -> dict[str, Any]:
    """One kernel compiled for ``arch``: its shared memory, registers and spill bytes."""
    kernel = compile_spec(spec, arch)
    registers, spills = ptxas_usage(kernel, arch)
    return {"kernel": spec.name, "shared": kernel.metadata.shared, "registers": registers, "spills": spills}


_SPECS: list[KernelSpec] = []  # what the forked workers compile, by index (a JIT function does not pickle)


def _usage_of(index: int, arch: str) -> dict[str, Any]:
    return usage(_SPECS[index], arch)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arch", nargs="?", default="sm_90")
    parser.add_argument("--all-configs", action="store_true", help="every autotune config of the fused matmul")
    parser.add_argument("--json", action="store_true", help="one JSON list instead of the table")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                        else 1, help="kernels compiled at once, in forked processes (default: one per core)")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.exit("kanbench.kernels.aot: unset TRITON_INTERPRET (the interpreter's kernels cannot be compiled).")
    _SPECS[:] = (grkan_specs(all_configs=args.all_configs, arch=args.arch) + spark_specs(arch=args.arch)
                 + kan_linear_specs(arch=args.arch) + wav_kan_specs() + af_kan_specs())
    if not args.json:
        print(f"triton {triton.__version__}, target {args.arch}")
        print(f"{'kernel':58s} {'smem B':>8s} {'regs':>5s} {'spill B':>8s}")
    measure = functools.partial(_usage_of, arch=args.arch)
    if args.jobs > 1 and "fork" in multiprocessing.get_all_start_methods():
        pool = multiprocessing.get_context("fork").Pool(args.jobs)
        rows = pool.imap(measure, range(len(_SPECS)))  # in order, as each finishes
    else:
        pool, rows = None, map(measure, range(len(_SPECS)))
    table = []
    for row in rows:
        table.append(row)
        if not args.json:
            print(f"{row['kernel']:58s} {row['shared']:8d} {row['registers']:5d} {row['spills']:8d}", flush=True)
    if pool is not None:
        pool.close()
        pool.join()
    if args.json:
        print(json.dumps(table))


if __name__ == "__main__":
    main()
