"""The profile harness: run only when named, its tables (the L2 flush taken out of a GPU profile exactly), its rows,
traces and report section, and the emulator refused as the latency harness refuses it."""

import gzip
import json
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from torch.autograd import DeviceType

from kanbench import registry
from kanbench.cli import main
from kanbench.harness import contention as load
from kanbench.harness.base import harness_names, measurement_names
from kanbench.harness.presets import get_preset
from kanbench.harness.profile import FLUSH, TOP, device_table, operator_table, profile_calls
from kanbench.report.profiles import profile_table, short_name

SMALL = ["--no-progress", "--no-report", "--tokens", "8", "--d-model", "16", "--d-hidden", "32"]


def run(tmp_path, *args):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), *SMALL, *args]) == 0
    return pd.read_csv(out / "results.csv", keep_default_na=False), out


def kernel(name, us, annotation=False):
    """A device event as torch.profiler's ``events()`` gives it."""
    return SimpleNamespace(name=name, device_type=DeviceType.CUDA, is_user_annotation=annotation, is_async=False,
                           time_range=SimpleNamespace(elapsed_us=lambda: us))


def cpu_op(name, self_us=0.0, children=(), kernels=(), annotation=False):
    return SimpleNamespace(name=name, device_type=DeviceType.CPU, is_user_annotation=annotation, is_async=False,
                           self_cpu_time_total=self_us, cpu_children=list(children),
                           kernels=[SimpleNamespace(name=n, duration=d) for n, d in kernels])


def test_the_profile_runs_only_when_named():
    assert "profile" in harness_names() and "profile" in measurement_names()
    assert "profile" not in harness_names(on_request=False)
    for preset in ("default", "ffn-768", "kat-b"):
        assert "profile" not in get_preset(preset).harness_names()


def test_a_gpu_table_takes_out_the_flush_and_nothing_else():
    # two calls, each after a flush whose fill kernel (50 µs) the profiler linked under the annotation; the call
    # itself runs a matmul (10 µs) and, the second time, a fill of its own (1 µs); the annotation's device range is
    # not a kernel
    flush = [cpu_op(FLUSH, children=[cpu_op("aten::zero_", children=[cpu_op("aten::fill_",
                                                                             kernels=[("fill", 50.0)])])],
                    annotation=True) for _ in range(2)]
    events = [*flush, kernel("fill", 50.0), kernel("gemm", 10.0), kernel("fill", 50.0), kernel("gemm", 10.0),
              kernel("fill", 1.0), kernel(FLUSH, 51.0, annotation=True)]
    table = device_table(events, flushes_expected=2)
    assert set(table) == {"gemm", "fill"}
    assert (table["gemm"].us, table["gemm"].runs) == (20.0, 2)
    assert (table["fill"].us, table["fill"].runs, table["fill"].launches) == (1.0, 1, 1)


def test_a_flush_the_profiler_did_not_link_is_an_error_not_a_table():
    unlinked = [cpu_op(FLUSH, annotation=True) for _ in range(2)]
    with pytest.raises(RuntimeError, match="flush"):
        device_table([*unlinked, kernel("fill", 50.0), kernel("fill", 50.0), kernel("gemm", 10.0)], 2)
    with pytest.raises(RuntimeError, match="CUPTI"):  # a profiler that cannot see the GPU
        device_table([*unlinked], 2)
    with pytest.raises(RuntimeError, match="flush"):  # fewer flushes recorded than calls profiled
        device_table([cpu_op(FLUSH, children=[cpu_op("aten::fill_", kernels=[("fill", 5.0)])], annotation=True),
                      kernel("fill", 5.0)], 2)


def test_a_cpu_table_holds_self_times_and_counts_leaf_operators_as_launches():
    leaf = cpu_op("aten::mm", self_us=30.0)
    events = [cpu_op("aten::linear", self_us=2.0, children=[leaf]), leaf, cpu_op("aten::gelu", self_us=8.0),
              cpu_op("my-annotation", self_us=99.0, annotation=True)]
    table = operator_table(events)
    assert set(table) == {"aten::linear", "aten::mm", "aten::gelu"}
    assert sum(k.us for k in table.values()) == 40.0
    assert sum(k.launches for k in table.values()) == 2 and table["aten::linear"].runs == 1


def test_a_kernels_short_name_keeps_the_function_alone():
    assert short_name("void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>, "
                      "std::array<char*, 1ul> >(int, at::native::FillFunctor<float>, std::array<char*, 1ul>)") \
        == "vectorized_elementwise_kernel"
    assert short_name("_forward_kernel") == "_forward_kernel" and short_name("aten::addmm") == "addmm"
    assert short_name("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", 20) == "sm90_xmma_gemm_bf16…"


def test_profile_rows_traces_and_report_on_the_cpu(tmp_path, capsys):
    df, out = run(tmp_path, "--variants", "mlp", "--impl", "reference", "--harness", "latency,profile")
    printed = capsys.readouterr().out
    assert "profile on cpu, fp32, block d_model=16" in printed and "launches" in printed
    prof = df[df.harness == "profile"]
    assert set(prof["mode"]) == {"fwd_no_grad", "fwd_bwd", "decode"}
    for _, rows in prof.groupby("mode"):
        assert set(rows.status) <= {"ok", "noisy"}
        busy = float(rows[rows.metric == "profile_busy"].value.iloc[0])
        kernels = rows[rows.metric == "profile_kernel"]
        times = kernels.value.astype(float).tolist()
        assert 0 < len(times) <= TOP and times == sorted(times, reverse=True) and 0 < sum(times) <= busy * 1.0001
        assert kernels.message.str.contains("aten::").any()
        assert float(rows[rows.metric == "profile_launches"].value.iloc[0]) >= 3  # two matmuls and the GELU
        trace = out / rows[rows.metric == "profile_busy"].message.iloc[0].split("trace ")[1].split(";")[0]
        with gzip.open(trace) as f:
            assert json.load(f)["traceEvents"]
    table = profile_table(df)
    assert len(table) == 3 and table["latency ms"].ne("").all() and table.longest.str.contains("aten::").all()
    assert not table.longest.str.contains("per call").any()  # "name (share)", the runs left to the CSV
    assert main(["report", str(out)]) == 0
    assert "## Where the time goes" in (out / "report.md").read_text()


def test_a_recording_too_short_for_the_cpu_counters_is_judged_by_the_machines_load(monkeypatch):
    # ten calls of a small block take milliseconds: one 10 ms tick of /proc/stat then read as "others used 102 %"
    one_tick = load.Contention(0.003, 0.0, 1.02, 0.0)
    idle, busy = load.Contention(0.2, 0.0, 0.01, 0.0), load.Contention(0.2, 0.0, 0.9, 0.0)
    monkeypatch.setattr(load, "between", lambda *_: one_tick)
    for machine in (idle, busy):
        monkeypatch.setattr(load, "machine_load", lambda seconds, machine=machine: machine)
        _, _, contention = profile_calls(lambda: torch.ones(4).sum(), "cpu", calls=2)
        assert contention is machine
    slow = load.Contention(1.5, 0.0, 0.5, 0.0)
    monkeypatch.setattr(load, "between", lambda *_: slow)  # long enough to be read as it is
    assert profile_calls(lambda: torch.ones(4).sum(), "cpu", calls=2)[2] is slow


def test_the_profile_refuses_an_emulated_kernel_as_the_latency_harness_does(tmp_path):
    impl = registry.get_variant("relu_kan").impl("triton")
    if impl.emulated("cpu") is None:
        pytest.skip("needs the Triton interpreter on the CPU (TRITON_INTERPRET=1, set by conftest without a GPU)")
    df, _ = run(tmp_path, "--variants", "relu_kan", "--impl", "triton", "--harness", "profile")
    prof = df[df.harness == "profile"]
    assert len(prof) and set(prof.status) == {"skipped"} and set(prof.metric) == {"profile"}
    assert (df[df.harness == "correctness"].status == "ok").all()  # checked, not profiled


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; the CPU profile tests cover the rest")
def test_a_gpu_profile_has_the_kernels_and_not_the_flush(tmp_path):
    df, _ = run(tmp_path, "--variants", "mlp,relu_kan", "--impl", "reference,triton", "--harness", "profile",
                "--device", "cuda", "--tokens", "256", "--d-model", "128")
    prof = df[df.harness == "profile"]
    assert set(prof.status) <= {"ok", "noisy"} and len(prof)
    # the flush zeroes twice the L2 once per call: had it stayed in the table, a fill kernel would run once a
    # call in the MLP's inference modes, which launch none of their own (two matmuls and a GELU)
    inference = prof[(prof.variant == "mlp") & (prof["mode"] != "fwd_bwd") & (prof.metric == "profile_kernel")]
    assert len(inference)
    assert not inference.message.str.contains("[Ff]ill.*: 1 per call").any()
    triton = prof[(prof.impl == "triton") & (prof.metric == "profile_kernel")]
    assert triton.message.str.contains("_forward_kernel").any()  # kanbench's own kernel, by its name
    launches = prof[prof.metric == "profile_launches"].value.astype(float)
    assert (launches == launches.round()).all() and (launches >= 1).all()  # whole kernels per call, over CALLS calls
