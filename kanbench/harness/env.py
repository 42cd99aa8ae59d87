"""The environment record (env.json) and the device's measured ceilings: copy bandwidth and matmul rate, measured
once per run so that every time can stand beside its physical floor."""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp64": torch.float64}


def git_commit() -> str | None:
    """The checkout's commit (``-dirty`` with uncommitted changes); KANBENCH_GIT_COMMIT where the tree was copied
    without its .git (a remote GPU machine)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        if out.returncode != 0:
            return os.environ.get("KANBENCH_GIT_COMMIT")
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=Path(__file__).resolve().parent).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("KANBENCH_GIT_COMMIT")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cpu_frequency(root: Path = Path("/sys/devices/system/cpu")) -> dict[str, Any] | None:
    """How the kernel drives the CPU's clock, which moves every CPU time: the scaling governor (each one in use),
    its driver, the frequency limits in MHz and whether turbo/boost is on. None where ``/sys`` does not expose it
    (most VMs: the host decides)."""
    governors = sorted({g for p in root.glob("cpu[0-9]*/cpufreq/scaling_governor") if (g := _read(p))})
    if not governors:
        return None
    cpu0 = root / "cpu0" / "cpufreq"
    info: dict[str, Any] = {"governor": ",".join(governors), "driver": _read(cpu0 / "scaling_driver")}
    for key, name in (("min_mhz", "scaling_min_freq"), ("max_mhz", "scaling_max_freq")):
        khz = _read(cpu0 / name)
        info[key] = int(khz) // 1000 if khz and khz.isdigit() else None
    no_turbo, boost = _read(root / "intel_pstate" / "no_turbo"), _read(root / "cpufreq" / "boost")
    info["turbo"] = no_turbo == "0" if no_turbo is not None else boost == "1" if boost is not None else None
    return info


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return None


def peer_packages() -> dict[str, str | None]:
    """The version of every package a peer impl measures (kanbench/peers/), None where it is not installed: read
    from the installed distribution's metadata, never by importing it."""
    from importlib import metadata

    from kanbench import registry

    specs = [registry.get_variant(name) for name in registry.list_variants()]
    packages = sorted({spec.impl(impl).package for spec in specs for impl in spec.impl_names()} - {None})
    versions: dict[str, str | None] = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def cpu_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """Whether the CPU has bf16 instructions (x86's avx512_bf16 or amx_bf16, Arm's bf16); None where the kernel
    does not say (no /proc/cpuinfo: macOS, Windows)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    flags = set()
    for line in text.splitlines():
        if line.lower().startswith(("flags", "features")):
            flags.update(line.split(":", 1)[-1].split())
            break
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"}) if flags else None


def gpu_identity(device: str) -> dict[str, Any]:
    """A CUDA device's name, architecture and whether it has bf16 arithmetic."""
    props = torch.cuda.get_device_properties(device)
    return {
        "gpu": props.name,
        # NVIDIA's compute capability as sm_XY; on a ROCm build of torch the AMD target (gfx942, ...)
        "gpu_arch": (getattr(props, "gcnArchName", "").split(":")[0] or None) if torch.version.hip
        else f"sm_{props.major}{props.minor}",
        # bf16 arithmetic in hardware: NVIDIA from sm_80 (Ampere); before it torch emulates bf16
        "bf16_native": bool(torch.version.hip) or props.major >= 8,
    }


def environment(device: str, argv: list[str] | None = None) -> dict[str, Any]:
    """What a reader needs to reproduce a figure: device, software versions, threads, commit and the command."""
    env: dict[str, Any] = {
        "device": device,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_frequency": cpu_frequency(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "triton": _version("triton"),
        "numpy": _version("numpy"),
        "peer_packages": peer_packages(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "command": shlex.join(["kanbench", *(argv if argv is not None else sys.argv[1:])]),
        "triton_interpret": os.environ.get("TRITON_INTERPRET", ""),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if torch.device(device).type == "cpu":
        env["bf16_native"] = cpu_bf16()
    if torch.device(device).type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update({
            **gpu_identity(device),
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "gpu_multiprocessors": props.multi_processor_count,
            "cuda": torch.version.cuda,
            "driver": _nvidia_driver(),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        })
    return env


def emulated_bf16_note(env: dict) -> str | None:
    """What a run must say of its bf16 rows on a device without bf16 arithmetic (a T4 or V100; a CPU without
    bf16 instructions), from its env; None elsewhere (and for a run that did not record it)."""
    if env.get("bf16_native") is not False:
        return None
    if env.get("gpu"):
        return (f"{env['gpu']} has no bf16 arithmetic (NVIDIA's starts at sm_80): torch and Triton emulate bf16 on "
                "it, so its bf16 rows time that emulation, the baselines' included; fp16 is its 16-bit type "
                "(--dtype fp16).")
    return (f"{env.get('cpu', 'this CPU')} has no bf16 instructions (avx512_bf16, amx_bf16 or Arm's bf16): torch "
            "converts bf16 to fp32 for its arithmetic there, so bf16 rows time the conversions too, the baselines' "
            "included.")


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _time_cuda(fn, repeats: int = 10) -> float:
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return sorted(times)[len(times) // 2]


def _time_cpu(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def measure_ceilings(device: str, dtypes: list[str]) -> dict[str, float]:
    """Copy bandwidth (bytes read + written per second) and matmul FLOP/s per dtype, on random data."""
    is_cuda = torch.device(device).type == "cuda"
    timer = _time_cuda if is_cuda else _time_cpu
    n_bytes = (1 << 30) if is_cuda else (1 << 27)  # 1 GiB on a GPU (far beyond L2), 128 MiB on a CPU
    src = torch.randn(n_bytes // 4, device=device)
    dst = torch.empty_like(src)
    seconds = timer(lambda: dst.copy_(src))
    ceilings = {"copy_bandwidth_Bps": 2 * n_bytes / seconds}
    n = 8192 if is_cuda else 1024
    for name in dtypes:
        dtype = DTYPES[name]
        if not is_cuda and dtype in (torch.float16,):
            continue
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        seconds = timer(lambda a=a, b=b: a @ b)
        ceilings[f"matmul_{name}_flops_per_s"] = 2 * n**3 / seconds
    return ceilings


def write_env(path: Path, env: dict[str, Any]) -> None:
    path.write_text(json.dumps(env, indent=2, sort_keys=True) + "\n")
