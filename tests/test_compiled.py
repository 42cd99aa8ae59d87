"""The ``compiled`` impl: every variant has one (any registered later too), it is the reference's own module with
the same parameter names, a deep copy runs its own weights, and the gate and the compile-time metric see it."""

import copy
from types import SimpleNamespace

import torch

from kanbench import compiled as compiled_module
from kanbench import registry
from kanbench.cli import main
from kanbench.compiled import COMPILED, compile_unavailable
from kanbench.harness import correctness
from kanbench.harness.results import Config


def test_every_variant_has_a_compiled_impl_and_a_new_one_gets_it_too():
    for name in registry.list_variants():
        assert COMPILED in registry.get_variant(name).impl_names(), name

    @registry.register("test_compiled_new", description="x", paper="x", block_cost=lambda *a, **k: None,
                       defaults={}, validate=lambda *a, **k: None)
    def block(d_model, d_hidden):
        return torch.nn.Linear(d_model, d_model)

    try:
        assert COMPILED in registry.get_variant("test_compiled_new").impl_names()
    finally:
        registry.unregister("test_compiled_new")


def test_compiled_module_is_the_reference_with_its_names_and_a_copy_runs_its_own_weights():
    assert compile_unavailable("cpu") is None  # g++ is on this machine: the tests below must run, not skip
    torch.manual_seed(0)
    compiled = registry.create_block("mlp", 16, 32, impl=COMPILED)
    reference = registry.create_block("mlp", 16, 32)
    assert list(compiled.state_dict()) == list(reference.state_dict())
    reference.load_state_dict(compiled.state_dict())
    x = torch.randn(8, 16)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), reference(x), rtol=1e-5, atol=1e-6)
        other = copy.deepcopy(compiled)
        for p in other.parameters():
            p.mul_(-0.5)
        reference.load_state_dict(other.state_dict())
        torch.testing.assert_close(other(x), reference(x), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(other(x), compiled(x))
    assert set(compiled.compile_seconds) == {((8, 16), torch.float32, False)}


def test_the_gate_passes_it_and_the_latency_harness_records_its_compile_time(tmp_path):
    config = Config("glu", COMPILED, "block", "cpu", "fp32", 8, 16, 32)
    assert correctness.gate(config, config.build()).ok
    out = tmp_path / "run"
    assert main(["run", "--variants", "mlp", "--impl", COMPILED, "--harness", "latency", "--tokens", "8",
                 "--decode-tokens", "2", "--d-model", "16", "--d-hidden", "32", "--out", str(out), "--no-progress",
                 "--no-report"]) == 0
    import pandas as pd

    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    compile_rows = df[df.metric == "compile_time"]
    assert set(compile_rows["mode"]) == {"fwd_no_grad", "fwd_bwd", "decode"}
    assert (compile_rows.value.astype(float) > 0).all() and set(compile_rows.status) == {"ok"}
    assert compile_rows[compile_rows["mode"] == "fwd_bwd"].message.str.contains("backward").all()
    assert compile_rows.message.str.contains("one-time start-up in this process not included").all()


def test_a_module_built_after_the_graph_was_compiled_reports_the_compile_not_a_lookup():
    torch.manual_seed(0)
    first = registry.create_block("glu", 8, 24, impl=COMPILED)
    x = torch.randn(5, 8, requires_grad=True)
    first(x).sum().backward()
    key = ((5, 8), torch.float32, True)
    seconds = first.compile_seconds[key]
    assert seconds > 0.005  # tracing and code generation: never a cache lookup's ~1 ms
    second = registry.create_block("glu", 8, 24, impl=COMPILED)  # the harness rebuilds modules between groups
    second(x).sum().backward()
    assert second.compile_seconds[key] == first.compile_seconds[key]


def test_the_process_start_up_is_paid_before_the_first_compile_is_timed(monkeypatch):
    """The one-time start-up (here a fake one moving a fake clock by 100 s) runs before the clock starts: the
    first compiled class's figure does not carry it, and its note reports it."""
    clock = {"now": 0.0}

    def fake_start_up(x: torch.Tensor) -> None:
        clock["now"] += 100.0

    monkeypatch.setattr(compiled_module, "_startup", {})
    monkeypatch.setattr(compiled_module, "_compile_one_op", fake_start_up)
    monkeypatch.setattr(compiled_module, "time", SimpleNamespace(perf_counter=lambda: clock["now"]))
    module = registry.create_block("mlp", 8, 16, impl=COMPILED)
    monkeypatch.setattr(compiled_module, "_first_calls", {})  # as in a fresh process: no graph timed yet
    with torch.no_grad():
        module(torch.randn(3, 8))
    key = ((3, 8), torch.float32, False)
    assert module.compile_seconds[key] < 100.0
    assert compiled_module._startup == {"cpu": 100.0}
    assert "start-up in this process not included (1e+02 s" in module.cache_note(key)
