"""Every Triton kernel compiled for an H100 (sm_90) on this machine, with the launch parameters its wrapper uses:
the interpreter checks what the kernels compute, this checks that they compile for the GPU at all, and that the
hand-tuned ones do not spill (beyond a few bytes); and, compiled for sm_86, that every kernel has a tile that fits
the 99 KB of shared memory a block has there. Runs in a subprocess: under TRITON_INTERPRET=1 (set by conftest.py)
the kernels are interpreter objects that Triton's compiler cannot take."""

import json
import os
import re
import subprocess
import sys
from collections import defaultdict

import pytest
import torch

from kanbench.kernels.kan_linear_tiles import SPACES

try:
    import triton.backends.nvidia.compiler  # noqa: F401
    NVIDIA_BACKEND = True
except ImportError:
    NVIDIA_BACKEND = False


def compiled(arch: str, *flags: str) -> list[dict]:
    """``python -m kanbench.kernels.aot ARCH --json``'s rows: each kernel's shared memory, registers and spills."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"  # Triton's current default, stated to silence its notice
    result = subprocess.run([sys.executable, "-m", "kanbench.kernels.aot", arch, "--json", *flags], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not NVIDIA_BACKEND, reason="this triton build has no NVIDIA backend (and no bundled ptxas)")
def test_every_triton_kernel_compiles_for_sm_90_and_the_tuned_ones_do_not_spill():
    rows = compiled("sm_90")
    names = {row["kernel"] for row in rows}
    for expected in ("grkan rational fwd", "grkan rational bwd", "spark decode gate (16-row tile)",
                     "spark top-k bwd (chunked)", "grkan fused matmul dWᵀ F(X)ᵀ·dY bf16 128x128x32",
                     "relu_kan fused fwd bf16", "relu_kan fused dW fp32", "relu_kan fused dx bf16",
                     "bspline_kan fused fwd bf16", "bspline_kan fused dW fp32", "bspline_kan fused dx fp32",
                     "bspline_kan unfused features bf16", "relu_kan unfused dx fp32", "fourier_kan unfused dx bf16",
                     "cheby_kan fused dx fp32", "fourier_kan fused fwd bf16", "fourier_kan fused dx bf16",
                     "wav_kan wavelet fwd bf16", "wav_kan wavelet dx fp32", "wav_kan wavelet dw dt ds bf16",
                     "af_kan row stats d_in=3072", "af_kan bwd d_in=3072", "af_kan bwd ties d_in=768"):
        assert any(name == expected or name.startswith(expected + " ") for name in names), expected
    for kernel, space in SPACES.items():  # every tile the KAN-layer kernels' autotuner may pick, every family
        for tile in space:
            for family in ("relu_kan", "bspline_kan", "cheby_kan", "fourier_kan"):
                assert f"{family} fused {kernel} bf16 {'x'.join(map(str, tile[:3]))}" in names
    for row in rows:
        assert row["shared"] <= 227 * 1024, row  # an H100 block's shared-memory limit
        # The fused matmul's tiles are the autotuner's pick (it times them all). The others were chosen by hand:
        # a regression shows as kilobytes of spills (BWD_TILE = 8192: 42 KB). Here the rational backward at the
        # tile chosen on the H100 spills 36 B under triton 3.9 and 44 B under 3.6 (.ci/run compiles with both; the
        # H100's own triton 3.6 build of its launch had none), and ReLU-KAN's dx at 64x128x32 56 B under 3.6.
        if not row["kernel"].startswith("grkan fused matmul"):
            assert row["spills"] <= 64, row


@pytest.mark.skipif(not NVIDIA_BACKEND, reason="this triton build has no NVIDIA backend (and no bundled ptxas)")
def test_every_triton_kernel_compiles_for_blackwell_sm_100():
    """B200 and GB200 (sm_100, 227 KB a block): every kernel builds for them and the hand-tuned ones spill no more
    than a few registers' worth (the rational backward: 76 B there under triton 3.9; 36 B on sm_90). The autotuned
    tiles are the tuner's to weigh by time (ReLU-KAN's dx at 64 x 128 x 32 spills 248 B there under triton 3.6).
    Until 2026-12-07 the compile tool itself failed there: it gave ptxas sm_100 for PTX Triton writes for sm_100a."""
    rows = compiled("sm_100")
    assert len(rows) >= 90
    for row in rows:
        assert row["shared"] <= 227 * 1024, row
        autotuned = row["kernel"].startswith("grkan fused matmul") or re.search(
            r" fused \w+ (bf16|fp16) \d+x\d+x\d+$", row["kernel"])
        if not autotuned:
            assert row["spills"] <= 128, row


# The shared memory one block may use (the opt-in maximum) on the GPUs with the least of it among those with bf16
# tensor cores: sm_86 stands for every one with 99 KB (RTX 30 and 40 series, A10, L4, A40; RTX 50's sm_120 has the
# same).
SMALL_GPU, SMALL_GPU_SHARED_MEMORY = "sm_86", 99 * 1024


@pytest.mark.skipif(not NVIDIA_BACKEND, reason="this triton build has no NVIDIA backend (and no bundled ptxas)")
def test_every_triton_kernel_has_a_tile_that_fits_a_99_kb_gpu():
    """The tiles are chosen on an H100 (227 KB a block). A kernel whose every tile needs more than a GPU has fails
    there (Triton's OutOfResources: an ``error`` row for every configuration of it). Triton's autotuner drops the
    tiles that do not fit and times the rest, so an autotuned kernel (the names that end in a tile, here with the
    whole GR-KAN space) needs one tile that fits; a hand-tuned one must fit itself."""
    tiles = defaultdict(dict)
    for row in compiled(SMALL_GPU, "--all-configs"):
        tiles[re.sub(r" \d+x\d+x\d+$", "", row["kernel"])][row["kernel"]] = row["shared"]
    # the autotuned spaces: 4 KAN families x 3 kernels (16-bit operands), GR-KAN's 2 matmuls x 2 operand types
    assert sum(len(space) > 1 for space in tiles.values()) >= 16
    too_big = {kernel: space for kernel, space in tiles.items() if min(space.values()) > SMALL_GPU_SHARED_MEMORY}
    assert not too_big, f"no tile of these fits {SMALL_GPU}'s {SMALL_GPU_SHARED_MEMORY} B a block: {too_big}"


# Turing (sm_75: T4, RTX 20; 64 KB a block): Triton's tl.dot has no tensor cores there and multiplies on the CUDA
# cores, so the kernels launch their CUDA-core tiles (kernels/launch.py).
TURING, TURING_SHARED_MEMORY = "sm_75", 64 * 1024


@pytest.mark.skipif(not NVIDIA_BACKEND, reason="this triton build has no NVIDIA backend (and no bundled ptxas)")
def test_every_triton_kernel_compiles_for_sm_75_at_the_tiles_launched_there_without_spills():
    """Every tile a launch may take on a T4 (the autotuners' CUDA-core spaces whole) fits its 64 KB a block and does
    not spill: the tensor-core tiles spilled 1–67 KB a thread there."""
    rows = compiled(TURING, "--all-configs")
    names = {row["kernel"] for row in rows}
    for expected in ("bspline_kan fused fwd bf16 32x32x32", "fourier_kan fused dx bf16 32x32x32",
                     "grkan fused matmul fwd F(X)·Wᵀ bf16 64x64x16", "grkan fused matmul dWᵀ F(X)ᵀ·dY fp32 32x32x32",
                     "spark decode gate (64-row tile)", "wav_kan wavelet dx bf16"):
        assert expected in names, expected
    assert not any(name.endswith("128x128x64") for name in names)  # no tensor-core tile of the KAN layers
    for row in rows:
        assert row["shared"] <= TURING_SHARED_MEMORY, row
        assert row["spills"] <= 64, row  # the rational backward: 12 B (36 B on sm_90)


def test_tensor_core_tiles_are_for_sm_80_and_newer(monkeypatch):
    from kanbench.kernels import kan_linear_tiles, launch
    from kanbench.kernels.launch import dots_on_tensor_cores
    from kanbench.kernels.spark_ffn.decode_triton import CUDA_CORE_WIDTH, tile_widths

    cuda = torch.device("cuda", 0)
    for capability, tensor_cores in (((7, 5), False), ((7, 0), False), ((8, 0), True), ((9, 0), True),
                                     ((12, 0), True)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        launch._architecture.cache_clear()
        assert dots_on_tensor_cores(cuda) is tensor_cores, capability
        assert kan_linear_tiles.fixed_tile(ieee=False, device=cuda) is not tensor_cores
        assert kan_linear_tiles.fixed_tile(ieee=True, device=cuda)  # fp32 products are never on tensor cores
    launch._architecture.cache_clear()  # the device's own, for any later test on a GPU
    assert not dots_on_tensor_cores(torch.device("cpu"))
    assert tile_widths(tensor_cores=False) == (CUDA_CORE_WIDTH, CUDA_CORE_WIDTH) != tile_widths(tensor_cores=True)
