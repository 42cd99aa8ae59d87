"""`kanbench run`: CSV schema, resume, failure rows, the correctness gate, timing sanity, FLOP and memory counts,
and the messages for bad flags."""

import csv
import time

import pandas as pd
import pytest
import torch
from torch import nn

from kanbench import registry
from kanbench.cli import main
from kanbench.costs import GELU, Cost
from kanbench.harness.memory import saved_for_backward_bytes
from kanbench.harness.results import COLUMNS, MEASURED
from kanbench.variants.mlp import MLPBlock

FAST = ["--no-progress", "--tokens", "8", "--d-model", "16", "--d-hidden", "32", "--harness", "latency,flops,memory"]


def run(tmp_path, *args):
    out = tmp_path / "run"
    code = main(["run", "--out", str(out), *FAST, *args])
    df = pd.read_csv(out / "results.csv", keep_default_na=False) if (out / "results.csv").exists() else None
    return code, df, out


class Raises(nn.Module):
    def __init__(self, d_model, d_hidden, error="oom"):
        super().__init__()
        self.linear = nn.Linear(d_model, d_model)
        self.error = error

    def forward(self, x):
        if self.error == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB (test)")
        if self.error == "nan":
            return self.linear(x) * float("nan")
        raise RuntimeError("kernel launch failed (test)")


class Sleeps(nn.Module):
    def __init__(self, d_model, d_hidden, ms=20.0):
        super().__init__()
        self.seconds = ms / 1e3

    def forward(self, x):
        time.sleep(self.seconds)
        return x * 1.0


@pytest.fixture
def test_variants():
    def reg(name, cls, defaults):
        registry.register(name, description="test", paper="test", block_cost=lambda d, h, **hp: Cost(0, 0, 0),
                          defaults=defaults, validate=lambda d, h, **hp: None)(cls)

    reg("test_raises", Raises, {"error": "oom"})
    reg("test_sleeps", Sleeps, {"ms": 20.0})

    class WrongMLP(MLPBlock):
        def forward(self, x):
            return super().forward(x) * 1.01  # 1 % off: must be caught by the gate

    class WrongGradMLP(MLPBlock):
        def forward(self, x):
            y = super().forward(x)
            return y + (y - y.detach()) * 0.05  # the same outputs, every gradient 5 % off

    registry.register_impl("mlp", registry.Impl("wrong", block=WrongMLP))
    registry.register_impl("mlp", registry.Impl("wrong_grad", block=WrongGradMLP))
    yield
    registry.unregister("test_raises")
    registry.unregister("test_sleeps")
    registry.unregister_impl("mlp", "wrong")
    registry.unregister_impl("mlp", "wrong_grad")


def test_csv_has_the_documented_schema_and_env_json(tmp_path):
    code, df, out = run(tmp_path, "--variants", "mlp,grkan")
    assert code == 0
    with (out / "results.csv").open() as f:
        assert next(csv.reader(f)) == COLUMNS
    # a Triton kernel's timing on the CPU (kanbench's or a peer's: ikan's rational) is emulated, so not taken
    emulated = (df.harness == "latency") & pd.Series(
        [registry.get_variant(v).impl(i).emulated(d) is not None
         for v, i, d in zip(df.variant, df.impl, df.device, strict=True)], df.index)
    gpu_only = df.impl == "cuda"  # the CUDA C++ impl: a row saying why it did not run here
    timed = df.harness == "latency"  # a timing may be noisy on a busy machine (never wrong); the rest is ok
    assert set(df[~emulated & ~gpu_only & ~timed].status) == {"ok"}
    assert set(df[~emulated & ~gpu_only & timed].status) <= MEASURED
    assert set(df[gpu_only].status) <= {"skipped"} and df[gpu_only].message.str.contains("cuda").all()
    # a Triton kernel emulated on the CPU is checked (its correctness rows are ok) but never timed
    assert set(df[emulated].status) <= {"skipped"}
    assert df[emulated].message.str.contains("TRITON_INTERPRET=1 emulator").all()
    assert set(df.harness) == {"correctness", "latency", "flops", "memory"}
    assert set(df.variant) == {"mlp", "grkan"}
    env = pd.read_json(out / "env.json", typ="series")
    for key in ("device", "cpu", "torch_threads", "python", "torch", "triton", "git_commit", "command", "ceilings"):
        assert key in env
    samples = pd.read_csv(out / "samples.csv")
    medians = df[(df.metric == "latency") & (df.stat == "median")]
    assert len(samples) >= 2 * len(medians)  # every sample kept, several per configuration


def test_resume_skips_what_is_done_and_completes_an_interrupted_run(tmp_path):
    code, full, out = run(tmp_path, "--variants", "mlp,glu")
    assert code == 0
    # As if interrupted mid-way: keep the rows of the first half of the units of work (a unit's rows are
    # written in one go, so an interrupt falls between units).
    unit = ["variant", "impl", "harness", "mode", "tokens"]
    units = list(dict.fromkeys(map(tuple, full[unit].astype(str).values.tolist())))
    kept = set(units[: len(units) // 2])
    mask = [tuple(r) in kept for r in full[unit].astype(str).values.tolist()]
    full[mask].to_csv(out / "results.csv", index=False)
    code, resumed, _ = run(tmp_path, "--variants", "mlp,glu", "--resume")
    assert code == 0
    key = ["variant", "harness", "mode", "metric", "stat"]
    assert sorted(map(tuple, resumed[key].values.tolist())) == sorted(map(tuple, full[key].values.tolist()))
    code, again, _ = run(tmp_path, "--variants", "mlp,glu", "--resume")
    assert len(again) == len(resumed)  # nothing left to do: nothing appended


@pytest.mark.parametrize(("error", "status", "text"), [("oom", "oom", "out of memory"),
                                                       ("nan", "error", "NaN/Inf"),
                                                       ("launch", "error", "kernel launch failed")])
def test_a_failing_configuration_becomes_a_row_and_the_sweep_goes_on(tmp_path, test_variants, error, status, text):
    registry.get_variant("test_raises").defaults["error"] = error
    code, df, _ = run(tmp_path, "--variants", "test_raises,mlp", "--impl", "reference", "--harness", "latency")
    assert code == 0
    failed = df[(df.variant == "test_raises") & (df.harness == "latency")]
    assert len(failed) and set(failed.status) == {status}
    assert all(text in m for m in failed.message)
    mlp = df[(df.variant == "mlp") & (df.metric == "latency") & (df.stat == "median")]
    assert len(mlp) == 3 and set(mlp.status) <= MEASURED  # the sweep went on


def test_the_gate_catches_a_wrong_impl_and_does_not_time_it(tmp_path, test_variants):
    code, df, _ = run(tmp_path, "--variants", "mlp", "--impl", "reference,wrong", "--harness", "latency")
    assert code == 0
    wrong = df[df.impl == "wrong"]
    gate = wrong[wrong.harness == "correctness"]
    assert len(gate) == 2 and set(gate.status) == {"mismatch"}  # one gate per configuration (8 tokens, decode 1)
    # decode times no gradient: its configuration is checked forward only
    assert dict(zip(gate.tokens.astype(int), gate["mode"], strict=True)) == {8: "check", 1: "check_forward"}
    assert (gate.value.astype(float) > 1e-3).all()
    timed = wrong[wrong.harness == "latency"]
    assert set(timed.status) == {"mismatch"} and (timed.value == "").all()
    ref = df[(df.impl == "reference") & (df.harness == "latency") & (df.stat == "median")]
    assert set(ref.status) <= MEASURED


def test_a_forward_only_verdict_on_file_does_not_pass_a_configuration_whose_gradients_are_later_timed(
        tmp_path, test_variants):
    args = ("--variants", "mlp", "--impl", "wrong_grad", "--harness", "latency")
    code, df, _ = run(tmp_path, *args)
    assert code == 0
    gate = df[df.harness == "correctness"].set_index("tokens")
    assert gate.loc[1, "mode"] == "check_forward" and gate.loc[1, "status"] == "ok"  # its outputs are right
    assert gate.loc[8, "mode"] == "check" and gate.loc[8, "status"] == "mismatch"  # its gradients are not
    decode = df[(df.harness == "latency") & (df["mode"] == "decode") & (df.stat == "median")]
    assert len(decode) == 1 and decode.status.iloc[0] in MEASURED  # forward only: measured
    # the same run resumed with 1 token among the main tokens: now its gradients are timed, so a full check runs
    code, df, _ = run(tmp_path, *args, "--tokens", "8,1", "--resume")
    assert code == 0
    at_one = df[(df.tokens == 1) & (df.harness == "correctness")]
    assert sorted(at_one["mode"]) == ["check", "check_forward"]
    assert at_one.set_index("mode").loc["check", "status"] == "mismatch"
    timed = df[(df.tokens == 1) & (df.harness == "latency") & (df["mode"] == "fwd_bwd")]
    assert len(timed) and set(timed.status) == {"mismatch"} and (timed.value == "").all()


def test_timing_of_an_operation_of_known_cost(tmp_path, test_variants):
    code, df, _ = run(tmp_path, "--variants", "test_sleeps", "--harness", "latency", "--threads", "1")
    assert code == 0
    # A sleep never ends early, whatever the load: every sample is >= 20 ms. The upper bound is on the fastest
    # sample of at least 10, so that a busy CI machine (late wake-ups) cannot fail it.
    stats = df[df.metric == "latency"].pivot_table(index="mode", columns="stat", values="value", aggfunc="first")
    assert len(stats) == 3 and (stats["n"].astype(float) >= 10).all()
    for low, median in zip(stats["min"].astype(float), stats["median"].astype(float), strict=True):
        assert 20.0 <= low < 40.0 and median >= 20.0, (low, median)


def test_mlp_flops_equal_the_textbook_count_exactly(tmp_path):
    n, d, h = 8, 16, 32
    code, df, _ = run(tmp_path, "--variants", "mlp", "--impl", "reference", "--harness", "flops")
    assert code == 0
    fwd = df[(df["mode"] == "fwd_no_grad")].set_index("metric").value.astype(float)
    assert fwd["flops_matmul"] == 2 * n * 2 * d * h
    assert fwd["flops_matmul_elementwise"] == 2 * n * 2 * d * h + n * (GELU * h + h + d)  # + GELU and bias adds
    assert fwd["flops_analytic"] == fwd["flops_matmul_elementwise"]
    assert fwd["flops_fvcore"] == n * 2 * d * h  # 1 MAC = 1 flop, elementwise ignored
    bwd = df[(df["mode"] == "fwd_bwd")].set_index("metric").value.astype(float)
    assert bwd["flops_matmul"] == 3 * 2 * n * 2 * d * h


def test_spark_flops_have_an_effective_column_and_the_active_fraction(tmp_path):
    code, df, _ = run(tmp_path, "--variants", "spark_ffn", "--impl", "reference", "--harness", "flops",
                      "--d-hidden", "256", "--tokens", "64")
    fwd = df[df["mode"] == "fwd_no_grad"].set_index("metric").value.astype(float)
    assert 0.04 < fwd["active_fraction"] < 0.12
    assert fwd["flops_effective"] < fwd["flops_matmul"]


def test_saved_for_backward_bytes_of_mlp_match_a_hand_count():
    n, d, h = 8, 16, 32
    block = MLPBlock(d, h)
    # x for the first Linear, the pre-activation for GELU, the activation for the second Linear; float32
    assert saved_for_backward_bytes(block, torch.randn(n, d)) == 4 * n * (d + h + h)


def test_memory_rows_on_cpu(tmp_path):
    code, df, _ = run(tmp_path, "--variants", "mlp", "--impl", "reference", "--harness", "memory")
    rows = df.set_index(["mode", "metric"]).value
    assert int(rows[("fwd_bwd", "saved_for_backward")]) == 4 * 8 * (16 + 32 + 32)
    assert int(rows[("fwd_no_grad", "param_bytes")]) == 4 * (2 * 16 * 32 + 32 + 16)
    # the peak during a call, on a CPU too: the hidden pre-activation and its GELU alive at once (the output comes
    # after the first is freed); with the backward, at least what autograd saved
    assert int(rows[("fwd_no_grad", "peak_over_baseline")]) == 4 * 8 * (32 + 32)
    assert int(rows[("fwd_bwd", "peak_over_baseline")]) >= int(rows[("fwd_bwd", "saved_for_backward")])


@pytest.mark.parametrize(("args", "message"), [
    (["--variants", "grkn"], "Did you mean 'grkan'?"),
    (["--variants", "zzz*"], "matches nothing; known variants: af_kan"),
    (["--dtype", "fp8"], "unknown dtype 'fp8'. Known dtypes: fp32, bf16, fp16, fp64"),
    (["--dtype", "bf61"], "Did you mean 'bf16'?"),
    (["--preset", "huge"], "unknown preset 'huge'. Known presets: default, accuracy-full, ffn-768, peers, kat-b, "
                           "spark-topk, decode-gemma2b"),
    (["--preset", "ffn768"], "Did you mean 'ffn-768'?"),
    (["--harness", "speed"], "unknown harness 'speed'. Known harnesses: latency, profile, flops, memory, accuracy"),
    (["--harness", "latncy"], "Did you mean 'latency'?"),
    (["--tokens", "0"], "--tokens takes positive integers"),
    (["--impl", "tritn"], "unknown impl 'tritn'. Did you mean 'triton'?"),
    (["--variants", "mlp", "--impl", "triton"], "nothing to run: no chosen variant (mlp) has the preset's form "
                                                "'block' in any of the impls triton"),
    (["--variants", "grkan", "--d-model", "100"], "width 100 is not divisible by groups=8"),
])
def test_bad_flags_fail_fast_with_a_message(tmp_path, capsys, args, message):
    out = tmp_path / "bad"
    code = main(["run", "--out", str(out), "--no-progress", *args])
    assert code == 2
    assert message in " ".join(capsys.readouterr().out.split())
    assert not (out / "results.csv").exists()  # nothing ran


def test_an_op_preset_plans_only_impls_with_an_op_form(tmp_path):
    # spark_ffn's sparse_cpu and grkan's triton_fused build no op: they are left out, not recorded as errors
    code, df, _ = run(tmp_path, "--preset", "spark-topk", "--tokens", "8", "--d-model", "300", "--harness", "flops")
    assert code == 0
    assert set(df.status) == {"ok"}
    assert set(df.form) == {"op"} and set(df.variant) == {"spark_ffn", "mlp"}
    assert "sparse_cpu" not in set(df.impl)
    spark = df[(df.variant == "spark_ffn") & (df.impl == "reference") & (df["mode"] == "fwd_no_grad")]
    analytic = spark[spark.metric == "flops_analytic"].value.astype(float).iloc[0]
    assert analytic == 8 * (4 * 300 + 2 * 300 + 3)  # var_mean 4/elem, subtract and ReLU 1 each, θ 3 per row


def test_graphing_the_training_step_leaves_the_runners_module_untouched(monkeypatch):
    # make_graphed_callables swaps a module's forward for the graph replay; the harness must graph a copy, or every
    # later harness on the cached module sees a forward that dispatches nothing (as in h100-2026-11-22/kat-b)
    from kanbench.harness import timing

    graphed = []

    def fake_make_graphed_callables(module, sample_args):
        graphed.append(module)
        module.forward = lambda *args: torch.zeros(3, 4, requires_grad=True)  # a replay: no ops dispatched
        return module

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", fake_make_graphed_callables)
    monkeypatch.setattr(timing, "time_cuda", lambda fn, samples: (fn(), timing.Timing([1.0], "events"))[1])
    module = nn.Linear(4, 4)
    x, upstream = torch.randn(3, 4, requires_grad=True), torch.randn(3, 4)
    timing.time_cuda_graph_training(module, x, upstream, samples=1)
    assert graphed and graphed[0] is not module
    assert "forward" not in vars(module)  # the runner's module keeps its own forward
    assert torch.allclose(module(x), x @ module.weight.T + module.bias)


def test_no_progress_bar_thread_runs_while_anything_is_timed(tmp_path, monkeypatch):
    """The progress bar redraws only between units: an auto-refresh thread of our own, waking while the timing
    threads hold every core, would make them wait and flag clean slots as contended."""
    import threading

    from kanbench.harness import timing

    seen: list[list[str]] = []
    time_cpu = timing.time_cpu

    def watched(*args, **kwargs):
        seen.append([type(t).__name__ for t in threading.enumerate()])
        return time_cpu(*args, **kwargs)

    monkeypatch.setattr(timing, "time_cpu", watched)
    assert main(["run", "--variants", "mlp", "--impl", "reference", "--harness", "latency", "--tokens", "8",
                 "--d-model", "16", "--d-hidden", "32", "--out", str(tmp_path / "r"), "--no-report"]) == 0
    assert seen, "nothing was timed"
    assert not any("_RefreshThread" in names for names in seen)
