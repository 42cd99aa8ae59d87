"""Peer adapters (kanbench/peers/): the weight mapping computes the reference's function (float64), a peer goes
through the same gate as kanbench's impls (its verdict is a finding, recorded either way), and a missing package
is an impl that says what to install — a skipped row, never an import error. CI installs the peers through
``.[test]``, so the adapters' tests run there."""

import pandas as pd
import pytest
import torch

from kanbench.cli import main
from kanbench.harness.results import Config
from kanbench.peers import INSTALL

PEERS = ["flashkan", "inkan"]  # the bspline_kan impls of peer packages, each package named as its impl
for package in PEERS:
    pytest.importorskip(package, reason="needs the kanbench[peers] extra (CI installs it through .[test])")


def outputs_and_grads(module, x, dy):
    x = x.clone().requires_grad_()
    y = module(x)
    y.backward(dy)
    return {"y": y.detach(), "dx": x.grad, **{n: p.grad for n, p in module.named_parameters()}}


@pytest.mark.parametrize("impl", PEERS)
@pytest.mark.parametrize("form", ["layer", "block"])
def test_a_peer_with_mapped_weights_computes_the_reference_function(impl, form):
    """Outputs and every gradient (named as the reference's) agree in float64 far below any mapping slip (which
    would be O(1)); what is left, ~1e-8, is arithmetic: both hold their knots in float32, the peers then assume
    exactly uniform spacing."""
    config = Config("bspline_kan", impl, form, "cpu", "fp64", 24, 16, 40)
    peer = config.build()
    reference = config.build("reference")
    reference.load_state_dict(peer.state_dict())
    assert peer.state_dict().keys() == reference.state_dict().keys()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 16, dtype=torch.float64, generator=g)
    dy = torch.randn(24, 40 if form == "layer" else 16, dtype=torch.float64, generator=g)
    got, truth = outputs_and_grads(peer, x, dy), outputs_and_grads(reference, x, dy)
    assert got.keys() == truth.keys()
    for name, value in truth.items():  # relative to the tensor's norm: a single small entry must not decide
        assert float((got[name] - value).norm() / value.norm()) < 1e-6, name


@pytest.mark.parametrize("impl", PEERS)
def test_a_peer_goes_through_the_gate_and_its_verdict_is_recorded(tmp_path, impl):
    out = tmp_path / "peer"
    assert main(["run", "--out", str(out), "--no-progress", "--no-report", "--variants", "bspline_kan", "--impl",
                 impl, "--harness", "flops", "--tokens", "32", "--d-model", "16"]) == 0
    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    gate = df[df.harness == "correctness"]
    assert len(gate) >= 1 and set(gate.status) <= {"ok", "mismatch"} and "" not in set(gate.value)
    for tokens, verdict in zip(gate.tokens, gate.status, strict=True):  # a rejected peer gets no number anywhere
        flops = df[(df.harness == "flops") & (df.tokens == tokens)]
        assert set(flops.status) == ({"mismatch"} if verdict == "mismatch" else {"ok"})


@pytest.mark.parametrize("impl", PEERS)
def test_a_missing_peer_package_is_a_skipped_row_naming_it(tmp_path, monkeypatch, capsys, impl):
    import kanbench.peers as peers

    real = peers.importlib.util.find_spec
    monkeypatch.setattr(peers.importlib.util, "find_spec", lambda name: None if name == impl else real(name))
    out = tmp_path / "missing"
    assert main(["run", "--out", str(out), "--no-progress", "--no-report", "--variants", "bspline_kan", "--impl",
                 impl, "--harness", "flops", "--tokens", "32", "--d-model", "16"]) == 0
    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert set(df.status) == {"skipped"} and all(INSTALL in m and f"'{impl}'" in m for m in df.message)
    assert main(["list"]) == 0
    assert impl in capsys.readouterr().out
