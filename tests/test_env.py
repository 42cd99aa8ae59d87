"""env.json's record of how the CPU clock was driven (governor, limits, turbo), read from /sys where the kernel
exposes it, and shown in the report's header; absent (a VM) it is None and the header says nothing of it. And the
GPU's architecture in the header, with a line where Triton's tl.dot has no tensor cores."""

from kanbench.harness.env import cpu_frequency
from kanbench.report.build import environment_lines


def _sysfs(root, governors, turbo_file=None, turbo=None):
    for cpu, governor in enumerate(governors):
        freq = root / f"cpu{cpu}" / "cpufreq"
        freq.mkdir(parents=True)
        (freq / "scaling_governor").write_text(governor + "\n")
        (freq / "scaling_driver").write_text("intel_pstate\n")
        (freq / "scaling_min_freq").write_text("800000\n")
        (freq / "scaling_max_freq").write_text("4700000\n")
    if turbo_file:
        (root / turbo_file).parent.mkdir(parents=True, exist_ok=True)
        (root / turbo_file).write_text(turbo + "\n")
    return root


def test_the_clock_settings_are_read_from_sysfs(tmp_path):
    root = _sysfs(tmp_path, ["performance", "powersave"], "intel_pstate/no_turbo", "1")
    assert cpu_frequency(root) == {"governor": "performance,powersave", "driver": "intel_pstate", "min_mhz": 800,
                                   "max_mhz": 4700, "turbo": False}
    boost = _sysfs(tmp_path / "amd", ["schedutil"], "cpufreq/boost", "1")
    assert cpu_frequency(boost)["turbo"] is True
    assert cpu_frequency(_sysfs(tmp_path / "unknown", ["performance"]))["turbo"] is None


def test_a_machine_that_does_not_expose_its_clock_records_none_and_the_header_stays_as_it_was(tmp_path):
    assert cpu_frequency(tmp_path) is None
    env = {"device": "cpu", "cpu": "AMD EPYC", "threads": 2}
    assert environment_lines(env)[0].endswith("CPU AMD EPYC, 2 threads")
    env["cpu_frequency"] = cpu_frequency(_sysfs(tmp_path / "m", ["performance"], "intel_pstate/no_turbo", "0"))
    assert "CPU AMD EPYC (governor performance 800–4700 MHz, turbo on), 2 threads" in environment_lines(env)[0]


def test_the_header_names_the_gpu_architecture_and_says_where_triton_has_no_tensor_cores():
    h100 = {"device": "cuda", "gpu": "NVIDIA H100 80GB HBM3", "gpu_arch": "sm_90", "cpu": "Xeon", "threads": 16}
    lines = environment_lines(h100)
    assert lines[0].startswith("device: NVIDIA H100 80GB HBM3, sm_90 (cuda)")
    assert not any("CUDA cores" in line for line in lines)
    t4 = {**h100, "gpu": "Tesla T4", "gpu_arch": "sm_75"}
    (warning,) = [line for line in environment_lines(t4) if "CUDA cores" in line]
    assert warning.startswith("sm_75: Triton's tl.dot has no tensor cores on this GPU")
    older = {k: v for k, v in t4.items() if k != "gpu_arch"}  # a run recorded before gpu_arch: as it was
    assert not any("CUDA cores" in line for line in environment_lines(older))
    mi300 = {**h100, "gpu": "AMD Instinct MI300X", "gpu_arch": "gfx942"}  # a ROCm build records the AMD target
    assert environment_lines(mi300)[0].startswith("device: AMD Instinct MI300X, gfx942 (cuda)")
    assert not any("CUDA cores" in line for line in environment_lines(mi300))


def test_the_header_says_when_the_gpu_has_no_bf16_arithmetic():
    t4 = {"device": "cuda", "gpu": "Tesla T4", "gpu_arch": "sm_75", "bf16_native": False, "cpu": "Xeon"}
    (note,) = [line for line in environment_lines(t4) if "bf16" in line]
    assert note.startswith("Tesla T4 has no bf16 arithmetic") and "--dtype fp16" in note
    for env in ({**t4, "bf16_native": True, "gpu_arch": "sm_90"}, {k: v for k, v in t4.items() if k != "bf16_native"},
                {"device": "cpu", "cpu": "AMD EPYC"}):  # a GPU with it, a run recorded before the key, a CPU run
        assert not any("bf16 arithmetic" in line for line in environment_lines(env))


def test_the_cpu_bf16_instructions_are_read_from_cpuinfo_and_named_when_missing(tmp_path):
    from kanbench.harness.env import cpu_bf16

    zen4 = tmp_path / "zen4"
    zen4.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n\nprocessor\t: 1\n")
    older = tmp_path / "older"
    older.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")
    assert cpu_bf16(zen4) is True and cpu_bf16(arm) is True and cpu_bf16(older) is False
    assert cpu_bf16(tmp_path / "absent") is None  # not Linux: unknown, and no note
    env = {"device": "cpu", "cpu": "Intel Xeon E5", "bf16_native": False}
    (note,) = [line for line in environment_lines(env) if "bf16" in line]
    assert note.startswith("Intel Xeon E5 has no bf16 instructions")
