"""GR-KAN's CUDA C++ kernels (the ``cuda`` impl).

Without a GPU: the kernels' per-element arithmetic (kernels/grkan/rational_cuda.cuh, the very functions the kernels
call) is compiled for the host and checked against the float64 reference; the device code is compiled by nvcc and
the torch binding against torch's headers where those tools exist; and the impl's refusals are checked. With a GPU:
the built extension against the reference, in every dtype, and its determinism."""

import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import torch

import kanbench.kernels.grkan.cuda as grkan_cuda
from kanbench.registry import get_variant
from kanbench.variants.grkan import rational

KERNELS = Path(grkan_cuda.__file__).parent
HOST_DRIVER = Path(__file__).parent / "cuda" / "rational_math_host.cpp"
CXX = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
NVCC = shutil.which("nvcc")
CUDA_READY = grkan_cuda.cuda_unavailable("cuda") is None
gpu = pytest.mark.skipif(not CUDA_READY, reason="needs a CUDA GPU, a CUDA build of torch and the CUDA toolkit; the "
                                                "host and compile checks above cover what a CPU machine can")


@pytest.mark.skipif(CXX is None, reason="needs a C++ compiler to build the host driver")
@pytest.mark.parametrize("sign_at_zero", [1, 0])
def test_kernel_arithmetic_compiled_for_the_host_matches_the_float64_reference(tmp_path, sign_at_zero):
    exe = tmp_path / "rational_math_host"
    subprocess.run([CXX, "-std=c++17", "-O2", "-Wall", "-Werror", f"-I{KERNELS}", str(HOST_DRIVER), "-o", str(exe)],
                   check=True, capture_output=True)
    g = torch.Generator().manual_seed(0)
    n = 64
    a = torch.randn(6, dtype=torch.float64, generator=g) * 0.5
    sign = torch.where(torch.rand(4, generator=g) < 0.5, -1.0, 1.0).double()
    b = (0.1 + torch.rand(4, dtype=torch.float64, generator=g)) * sign
    x = torch.randn(n, dtype=torch.float64, generator=g) * 2
    x[0], x[1] = 0.0, -0.0  # the sign(0) convention at the kink
    dy = torch.randn(n, dtype=torch.float64, generator=g)
    a, b, x, dy = (t.float().double() for t in (a, b, x, dy))  # the driver reads fp32: compare on the same inputs
    stdin = " ".join(f"{v:.9g}" for v in [*a.tolist(), *b.tolist(), sign_at_zero, n])
    stdin += "\n" + "\n".join(f"{u:.9g} {v:.9g}" for u, v in zip(x.tolist(), dy.tolist(), strict=True)) + "\n"
    out = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, check=True).stdout
    got = torch.tensor([[float(v) for v in line.split()] for line in out.splitlines()], dtype=torch.float64)
    assert got.shape == (n, 12)
    # per-element gradients: give every element its own group, so each group's coefficient gradient is one term
    xr = x.clone().requires_grad_()
    ar, br = a.repeat(n, 1).requires_grad_(), b.repeat(n, 1).requires_grad_()
    y = rational(xr.reshape(1, n), ar, br, sign_at_zero).reshape(n)
    y.backward(dy)
    expected = torch.cat([y[:, None], xr.grad[:, None], ar.grad, -torch.sign(br) * br.grad], dim=1).detach()
    error = (got - expected).abs() / (expected.abs() + 1e-6)
    assert float(error.max()) < 1e-5, error.max(0).values


@pytest.mark.skipif(NVCC is None, reason="needs nvcc (the CUDA toolkit) to compile device code")
# T4, A100, RTX 30 and A10, H100, B200, RTX 50
@pytest.mark.parametrize("arch", ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"])
def test_device_code_compiles_without_warnings(tmp_path, arch):
    result = subprocess.run([NVCC, "-std=c++17", "-O3", "-c", f"-arch={arch}", "-Werror", "all-warnings",
                             "-Xptxas", "-v", str(KERNELS / "rational_cuda.cu"), "-o", str(tmp_path / "k.o")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "spill stores" in result.stderr and " 0 bytes spill stores" in result.stderr
    assert all(" 0 bytes spill" in line for line in result.stderr.splitlines() if "spill" in line)


@pytest.mark.skipif(CXX is None or NVCC is None, reason="needs a C++ compiler and the CUDA headers (nvcc's toolkit)")
def test_torch_binding_compiles_against_this_torch(tmp_path):
    include = Path(torch.__file__).parent / "include"
    cuda_include = Path(NVCC).resolve().parent.parent / "include"
    if not (cuda_include / "cuda_runtime.h").exists():
        cuda_include = Path(grkan_cuda.cuda_toolkit() or "/usr/local/cuda") / "include"
    flags = []
    if not (include / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h").exists():
        # a CPU build of torch ships the CUDA headers without this generated one; it only sets the export macro
        shim = tmp_path / "shim" / "c10" / "cuda" / "impl"
        shim.mkdir(parents=True)
        (shim / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
        flags.append(f"-I{tmp_path / 'shim'}")
    command = [CXX, "-std=c++20", "-fsyntax-only", "-DTORCH_EXTENSION_NAME=kanbench_check", *flags,
               f"-I{include}", f"-I{include / 'torch' / 'csrc' / 'api' / 'include'}",
               f"-I{sysconfig.get_paths()['include']}", f"-I{cuda_include}", str(KERNELS / "rational_cuda.cpp")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def test_cuda_impl_says_why_it_cannot_run(monkeypatch):
    impl = get_variant("grkan").impl("cuda")
    assert "runs on cuda" in impl.why_not("cpu")
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "built without CUDA" in grkan_cuda.cuda_unavailable("cuda")
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert grkan_cuda.cuda_unavailable("cuda") == "no CUDA device"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(grkan_cuda, "cuda_toolkit", lambda: None)
    why = grkan_cuda.cuda_unavailable("cuda")
    assert "no CUDA toolkit" in why and "CUDA_HOME" in why and "13.0" in why
    grkan_cuda.load_extension.cache_clear()
    with pytest.raises(RuntimeError, match="grkan cuda: no CUDA toolkit"):
        grkan_cuda.load_extension()
    grkan_cuda.load_extension.cache_clear()


def test_cuda_toolkit_needs_both_nvcc_and_the_headers(tmp_path, monkeypatch):
    bare = tmp_path / "bare"
    (bare / "bin").mkdir(parents=True)
    (bare / "bin" / "nvcc").write_text("#!/bin/sh\n")
    full = tmp_path / "full"
    for sub, name in (("bin", "nvcc"), ("include", "cuda_runtime.h")):
        (full / sub).mkdir(parents=True)
        (full / sub / name).write_text("")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CUDA_HOME", str(bare))
    monkeypatch.setenv("CUDA_PATH", str(full))
    assert grkan_cuda.cuda_toolkit() == str(full)


# -- on a GPU: the built extension ----------------------------------------------------------------------------------

def _grads(x, a, b, dy, fn):
    xs, as_, bs = (t.clone().requires_grad_() for t in (x, a, b))
    y = fn(xs, as_, bs)
    y.backward(dy)
    return [y.detach(), xs.grad, as_.grad, bs.grad]


def _rel(u, v):
    return float((u.double().cpu() - v.double().cpu()).norm() / v.double().cpu().norm())


@gpu
@pytest.mark.parametrize(("lead", "D", "groups", "shared"), [((5, 7), 48, 8, True), ((33,), 200, 8, True),
                                                              ((3, 1, 2), 24, 4, False), ((64 * 197,), 768, 8, True)])
def test_cuda_kernels_match_the_float64_reference(lead, D, groups, shared):
    g = torch.Generator().manual_seed(D)
    x = torch.randn(*lead, D, dtype=torch.float64, generator=g) * 1.5
    a = torch.randn(1 if shared else groups, 6, dtype=torch.float64, generator=g) * 0.5
    b = (0.1 + torch.rand(groups, 4, dtype=torch.float64, generator=g)) * torch.where(
        torch.rand(groups, 4, generator=g) < 0.5, -1.0, 1.0).double()
    dy = torch.randn(*lead, D, dtype=torch.float64, generator=g)
    ref = _grads(x, a, b, dy, rational)
    for dtype, tolerance in ((torch.float32, 1e-5), (torch.bfloat16, 1e-2), (torch.float16, 2e-3)):
        xd, dyd = x.to(dtype), dy.to(dtype)
        ref_d = _grads(xd.double(), a, b, dyd.double(), rational)  # the same rounded inputs
        got = _grads(xd.cuda(), a.float().cuda(), b.float().cuda(), dyd.cuda(), grkan_cuda.rational_cuda)
        assert got[0].dtype == dtype and got[1].dtype == dtype
        for name, u, v in zip(("y", "dx", "da", "db"), got, ref_d if dtype != torch.float32 else ref, strict=True):
            assert _rel(u, v) < tolerance, (dtype, name, _rel(u, v))


@gpu
def test_cuda_coefficient_gradients_are_bit_identical_across_calls():
    ext = grkan_cuda.load_extension()
    x = torch.randn(5000, 256, device="cuda")
    dy = torch.randn_like(x)
    a, b = torch.randn(8, 6, device="cuda"), torch.rand(8, 4, device="cuda") + 0.1
    first = ext.rational_backward(dy, x, a, b, 1.0)
    for _ in range(3):
        for u, v in zip(first, ext.rational_backward(dy, x, a, b, 1.0), strict=True):
            assert torch.equal(u, v)


@gpu
@pytest.mark.parametrize("form", ["op", "layer", "block"])
def test_cuda_impl_passes_the_harness_gate(form, grkan_gate):
    result, _ = grkan_gate("cuda", form, "cuda")
    assert result.ok, result.message


def test_host_driver_and_sources_exist_where_the_impl_looks():
    for source in grkan_cuda.SOURCES:
        assert source.exists(), source
    assert (KERNELS / "rational_cuda.cuh").exists() and HOST_DRIVER.exists()
