"""Peer adapters (kanbench/peers/): each weight mapping computes the reference's function (float64 where the peer
takes it), a peer goes through the same gate as kanbench's impls (its verdict is a finding, recorded either way),
and a missing package is an impl that says what to install — a skipped row, never an import error. CI installs
the peers through ``.[test]``, so these tests run there; Triton peers run as interpreter twins without a GPU."""

import importlib.util

import pandas as pd
import pytest
import torch
from kernel_devices import DEVICES, gpu, outputs_and_grads

from kanbench.cli import main
from kanbench.harness.results import Config
from kanbench.peers import INSTALL

# (variant, impl): the module each needs and the dtype its check runs in (float64 where the peer computes it)
PEERS = {("bspline_kan", "flashkan"): ("flashkan", "fp64"), ("bspline_kan", "inkan"): ("inkan", "fp64"),
         ("bspline_kan", "pykan"): ("kan", "fp64"), ("bspline_kan", "ikan"): ("ikan", "fp64"),
         ("grkan", "ikan"): ("ikan", "fp32"), ("cheby_kan", "ikan"): ("ikan", "fp64"),
         ("fourier_kan", "ikan"): ("ikan", "fp64"), ("wav_kan", "ikan"): ("ikan", "fp64")}
TRITON_PEERS = {("grkan", "ikan")}  # run on CUDA, or on the CPU in the Triton interpreter


def installed(module: str):
    return pytest.mark.skipif(importlib.util.find_spec(module) is None,
                              reason=f"needs {module} from the kanbench[peers] extra (CI installs it via .[test])")


def peer_params(forms=("layer", "block")):
    return [pytest.param(v, i, f, marks=installed(m)) for (v, i), (m, _) in PEERS.items() for f in forms
            if (v, i) not in TRITON_PEERS or DEVICES]


@pytest.mark.parametrize(("variant", "impl", "form"), peer_params())
def test_a_peer_with_mapped_weights_computes_the_reference_function(variant, impl, form):
    """Outputs and every gradient (named as the reference's) agree far below any mapping slip (which would be O(1));
    what is left is arithmetic: ~1e-8 in float64 (knots held in float32, uniform spacing assumed), ~1e-7 in fp32."""
    dtype = PEERS[variant, impl][1]
    device = "cuda" if (variant, impl) in TRITON_PEERS and "cuda" in DEVICES else "cpu"
    config = Config(variant, impl, form, device, dtype, 24, 16, 40)
    peer, reference = config.build(), config.build("reference")
    reference.load_state_dict(peer.state_dict())
    assert peer.state_dict().keys() == reference.state_dict().keys()
    g = torch.Generator().manual_seed(0)
    torch_dtype = torch.float64 if dtype == "fp64" else torch.float32
    x = torch.randn(24, 16, dtype=torch_dtype, generator=g).to(device)
    dy = torch.randn(24, 40 if form == "layer" else 16, dtype=torch_dtype, generator=g).to(device)
    got, truth = outputs_and_grads(peer, x, dy), outputs_and_grads(reference, x, dy)
    assert got.keys() == truth.keys()
    tolerance = 1e-6 if dtype == "fp64" else 2e-5
    for name, value in truth.items():  # relative to the tensor's norm: a single small entry must not decide
        assert float((got[name] - value).norm() / value.norm()) < tolerance, name


@pytest.mark.parametrize("impl", [pytest.param("pykan", marks=installed("kan")),
                                  pytest.param("ikan", marks=installed("ikan"))])
def test_peers_of_any_spline_order_take_a_quadratic_spline(impl):
    config = Config("bspline_kan", impl, "layer", "cpu", "fp64", 8, 6, 5, hparams={"spline_order": 2})
    peer, reference = config.build(), config.build("reference")
    reference.load_state_dict(peer.state_dict())
    x = torch.randn(8, 6, dtype=torch.float64)
    torch.testing.assert_close(peer(x), reference(x), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("impl", [pytest.param("flashkan", marks=installed("flashkan")),
                                  pytest.param("inkan", marks=installed("inkan"))])
def test_a_cubic_only_peer_refuses_another_order_saying_so(impl):
    peer = Config("bspline_kan", impl, "layer", "cpu", "fp64", 8, 6, 5, hparams={"spline_order": 2}).build()
    with pytest.raises(ValueError, match="cubic B-splines only: spline_order must be 3, got 2"):
        peer(torch.randn(8, 6, dtype=torch.float64))


@installed("ikan")
@pytest.mark.skipif(not DEVICES, reason="needs a CUDA GPU or the Triton interpreter (TRITON_INTERPRET=1)")
def test_ikan_rational_refuses_the_other_sign_at_zero():
    op = Config("grkan", "ikan", "op", DEVICES[0], "fp32", 8, 16, 16, hparams={"sign_at_zero": 0}).build()
    with pytest.raises(ValueError, match="sign_at_zero=1"):
        op(torch.randn(8, 16, device=DEVICES[0]))


@installed("ikan")
@pytest.mark.skipif("cpu" not in DEVICES, reason="the CPU runs Triton only under TRITON_INTERPRET=1")
def test_ikan_rational_in_bf16_on_the_interpreter_says_it_needs_a_gpu():
    """ikan's kernel computes in bf16, which the interpreter runs on the bit patterns: its output there is garbage,
    which the gate would read as ikan's NaN; a clear refusal says where its bf16 numbers can come from."""
    op = Config("grkan", "ikan", "op", "cpu", "bf16", 8, 16, 16).build()
    with pytest.raises(RuntimeError, match="bf16 numbers need a CUDA GPU"):
        op(torch.randn(8, 16, dtype=torch.bfloat16))


@pytest.mark.parametrize(("variant", "impl"), [pytest.param(v, i, marks=installed(m))
                                               for (v, i), (m, _) in PEERS.items()])
def test_a_peer_goes_through_the_gate_and_its_verdict_is_recorded(tmp_path, variant, impl):
    out = tmp_path / "peer"
    assert main(["run", "--out", str(out), "--no-progress", "--no-report", "--variants", variant, "--impl",
                 impl, "--harness", "flops", "--tokens", "32", "--d-model", "16"]) == 0
    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    gate = df[df.harness == "correctness"]
    if (variant, impl) in TRITON_PEERS and not DEVICES:
        assert set(df.status) == {"skipped"}
        return
    assert len(gate) >= 1 and set(gate.status) <= {"ok", "mismatch"} and "" not in set(gate.value)
    for tokens, verdict in zip(gate.tokens, gate.status, strict=True):  # a rejected peer gets no number anywhere
        flops = df[(df.harness == "flops") & (df.tokens == tokens)]
        assert set(flops.status) == ({"mismatch"} if verdict == "mismatch" else {"ok"})


@pytest.mark.parametrize(("variant", "impl", "module", "package"), [
    ("bspline_kan", "flashkan", "flashkan", "flashkan"), ("bspline_kan", "pykan", "kan", "pykan"),
    ("grkan", "ikan", "ikan", "ikan"), ("glu", "liger", "liger_kernel", "liger-kernel")])
def test_a_missing_peer_package_is_a_skipped_row_naming_it(tmp_path, monkeypatch, capsys, variant, impl, module,
                                                           package):
    import kanbench.peers as peers

    real = peers.importlib.util.find_spec
    monkeypatch.setattr(peers.importlib.util, "find_spec", lambda name: None if name == module else real(name))
    out = tmp_path / "missing"
    assert main(["run", "--out", str(out), "--no-progress", "--no-report", "--variants", variant, "--impl",
                 impl, "--harness", "flops", "--tokens", "32", "--d-model", "16"]) == 0
    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert set(df.status) == {"skipped"} and all(INSTALL in m and f"'{package}'" in m for m in df.message)
    assert main(["list"]) == 0
    assert impl in capsys.readouterr().out


@installed("liger_kernel")
@pytest.mark.parametrize("form", ["layer", "block"])
def test_liger_glu_feeds_the_gate_first_and_the_up_projection_second(monkeypatch, form):
    """Liger's kernels need a GPU (they do not run in the interpreter): on the CPU its product stands in, so what
    is checked is the adapter's wiring, SiLU on the gate and not on the up projection."""
    import kanbench.peers.liger_kernel as liger

    monkeypatch.setattr(liger, "silu_mul", lambda gate, up: torch.nn.functional.silu(gate) * up)
    config = Config("glu", "liger", form, "cpu", "fp64", 8, 12, 20)
    peer, reference = config.build(), config.build("reference")
    reference.load_state_dict(peer.state_dict())
    x = torch.randn(8, 12, dtype=torch.float64)
    torch.testing.assert_close(peer(x), reference(x))


@installed("liger_kernel")
def test_liger_refuses_another_activation_saying_so(monkeypatch):
    import kanbench.peers.liger_kernel as liger

    monkeypatch.setattr(liger, "silu_mul", lambda gate, up: gate * up)
    block = Config("glu", "liger", "block", "cpu", "fp32", 8, 12, 20, hparams={"activation": "gelu"}).build()
    with pytest.raises(ValueError, match="SwiGLU only: glu's activation must be 'silu', got 'gelu'"):
        block(torch.randn(8, 12))


@gpu
@installed("liger_kernel")
def test_liger_glu_on_a_gpu_computes_the_reference_function():
    config = Config("glu", "liger", "block", "cuda", "fp32", 64, 32, 96)
    peer, reference = config.build(), config.build("reference")
    reference.load_state_dict(peer.state_dict())
    x, dy = torch.randn(64, 32, device="cuda"), torch.randn(64, 32, device="cuda")
    got, truth = outputs_and_grads(peer, x, dy), outputs_and_grads(reference, x, dy)
    for name, value in truth.items():
        assert float((got[name] - value).norm() / value.norm()) < 1e-5, name


def _row(impl, harness, metric, value, mode="fwd_bwd", stat="value", status="ok", message=""):
    return {"variant": "bspline_kan", "impl": impl, "dtype": "fp32", "tokens": 256, "d_model": 128,
            "harness": harness, "metric": metric, "stat": stat, "mode": mode, "value": str(value), "status": status,
            "message": message}


def test_the_peers_table_puts_kanbenchs_fastest_beside_every_peer_and_a_rejected_peer_has_no_number():
    from kanbench.report.peers import peers_table

    rows = [_row(impl, "correctness", "max_rel_error", err, mode="check", status=verdict)
            for impl, err, verdict in [("reference", 0.0, "ok"), ("compiled", 5e-7, "ok"), ("inkan", 4e-6, "ok"),
                                       ("pykan", 2e-6, "ok"), ("flashkan", 2.5e-4, "mismatch")]]
    for impl, fwd, fwd_bwd in [("reference", 6.0, 20.0), ("compiled", 4.0, 16.0), ("inkan", 5.0, 18.0),
                               ("pykan", 300.0, 800.0)]:
        rows += [_row(impl, "latency", "latency", fwd, mode="fwd_no_grad", stat="median"),
                 _row(impl, "latency", "latency", fwd_bwd, stat="median"),
                 _row(impl, "memory", "saved_for_backward", 2**20 * fwd_bwd)]
    rows += [_row("flashkan", "latency", "latency", "", stat="value", status="mismatch", message="gate")]
    table = peers_table(pd.DataFrame(rows))
    assert list(table.impl) == ["compiled", "inkan", "pykan", "flashkan"]  # kanbench's fastest, then peers by speed
    assert list(table.package) == ["kanbench (fastest)", "inkan", "pykan", "flashkan"]
    assert list(table["fwd+bwd ms"]) == ["16", "18", "800", ""]
    assert list(table["time ÷ kanbench's"]) == ["1.00×", "1.12×", "50.00×", ""]
    assert list(table["saved MiB"]) == ["16", "18", "800", ""]
    assert table.gate.iloc[-1] == "mismatch (error 0.00025)" and table.gate.iloc[1] == "ok (error 4e-06)"


def test_a_run_without_peer_impls_has_no_peers_table():
    from kanbench.report.peers import peers_table

    rows = [dict(_row("reference", "latency", "latency", 1.0, stat="median"), variant="mlp")]
    assert peers_table(pd.DataFrame(rows)).empty


def test_env_json_records_each_peer_packages_version_without_importing_it(monkeypatch):
    from importlib import metadata

    from kanbench.harness.env import peer_packages

    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: (_ for _ in ()).throw(metadata.PackageNotFoundError(name))
                        if name == "pykan" else real(name) if name != "flashkan" else "9.9")
    versions = peer_packages()
    assert {"flashkan", "inkan", "pykan", "ikan", "liger-kernel"} <= set(versions)
    assert versions["pykan"] is None and versions["flashkan"] == "9.9"


def test_the_peers_preset_takes_the_ffn_768_sizes_on_a_gpu_and_a_cpu_size_elsewhere():
    from kanbench.harness.presets import get_preset

    preset = get_preset("peers")
    assert preset.for_device("cpu").tokens == (256,) and preset.for_device("cpu").d_model == (128,)
    on_gpu = preset.for_device("cuda")
    ffn = get_preset("ffn-768")
    assert (on_gpu.tokens, on_gpu.d_model, on_gpu.dtypes) == (ffn.tokens, ffn.d_model, ffn.dtypes)
    assert get_preset("ffn-768").for_device("cuda") == ffn  # a preset without GPU sizes is the same everywhere
