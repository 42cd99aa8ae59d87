"""Accuracy harness: offline loaders, disjoint splits, selection on validation, training, matching, NaN rows."""

import gc
import socket

import pandas as pd
import pytest
import torch
from torch import nn

from kanbench import registry
from kanbench.cli import main
from kanbench.costs import Cost
from kanbench.data.digits import digits
from kanbench.data.kan_fit import FORMULAS, kan_fit
from kanbench.data.mnist1d import mnist1d
from kanbench.data.splits import three_way
from kanbench.data.text import char_corpus
from kanbench.harness import accuracy, training
from kanbench.harness.accuracy import TASKS, get_task, match_hidden, supports, task_cost


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_every_loader_works_without_a_network(no_network):
    with pytest.raises(OSError):
        socket.create_connection(("example.org", 80))
    assert len(digits().train[0]) > 1000
    assert len(mnist1d(num_samples=400).test[0]) > 0
    for name in FORMULAS:
        assert kan_fit(name).train[1].shape[1] == 1
    corpus = char_corpus(max_chars=20_000)
    assert len(corpus.train) > len(corpus.val) > 0


def test_three_way_splits_are_disjoint_and_cover_everything():
    ids = torch.arange(1000)
    split = three_way(ids, ids, val=0.1, test=0.2, seed=3)
    parts = [set(p[0].tolist()) for p in (split.train, split.val, split.test)]
    assert sum(map(len, parts)) == 1000 and set.union(*parts) == set(range(1000))
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert [len(p) for p in parts] == [700, 100, 200]


def test_text_splits_are_contiguous_and_disjoint():
    corpus = char_corpus()
    assert len(corpus.train) + len(corpus.val) + len(corpus.test) > 450_000  # the pydoc topics text, ~465k characters
    assert min(len(corpus.val), len(corpus.test)) >= 64_000  # held-out sets large enough to agree within noise
    assert 4.0 < corpus.unigram_entropy_bits() < 5.5


def test_model_selection_uses_validation_not_test(monkeypatch):
    task = TASKS["digits"]
    task = accuracy.Task(**{**task.__dict__, "eval_every": 1})
    data = training.load_data(task, 0)
    model = nn.Sequential(nn.Linear(64, 10))
    val_scores = iter([0.1, 0.9, 0.2, 0.3, 0.4])
    snapshots = []

    def fake_score(task_, model_, x, y):
        if x.shape[0] == len(data.split.val[0]):
            snapshots.append(model_[0].weight.detach().clone())
            return next(val_scores), None
        return float(model_[0].weight.sum()), None  # the test score identifies the checkpoint it was computed on

    monkeypatch.setattr(training, "score", fake_score)
    result = training.train(task, model, data, steps=5, seed=0)
    assert result.best_step == 2 and result.best_val == 0.9
    assert result.test == pytest.approx(float(snapshots[1].sum()))


def test_a_timed_training_run_has_the_garbage_collector_paused_and_restores_it():
    task = TASKS["digits"]
    model = nn.Sequential(nn.Linear(64, 10))
    enabled_at_step = []
    model.register_forward_pre_hook(lambda module, args: enabled_at_step.append(gc.isenabled()))
    training.train(task, model, training.load_data(task, 0), steps=5, seed=0)
    timed = enabled_at_step[:5]  # the five training forwards; the checkpoint's test score comes after the timing
    assert timed == [False] * 5 and gc.isenabled()


def test_training_lowers_the_loss_and_is_deterministic_under_a_seed():
    task = TASKS["digits"]
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        model = accuracy.build_model(task, "mlp", 32)
        results.append(training.train(task, model, training.load_data(task, 0), steps=400, seed=0))
    assert results[0].last_loss < 0.5 * results[0].first_loss
    assert results[0].test > 0.8
    assert results[0].test == results[1].test and results[0].best_step == results[1].best_step


@pytest.mark.parametrize("task_name", list(TASKS))
def test_match_params_lands_every_variant_within_5_percent(task_name):
    task = TASKS[task_name]
    target = task_cost(task, "mlp", task.reference_hidden).params
    for variant in registry.list_variants():
        if supports(task, variant):
            continue
        hidden, gap = match_hidden(task, variant, "params")
        assert abs(task_cost(task, variant, hidden).params - target) / target <= 0.05, (variant, hidden, gap)
        assert abs(gap) <= 0.05


def test_match_flops_and_none():
    task = TASKS["vit-digits"]
    hidden, gap = match_hidden(task, "bspline_kan", "flops")
    target = task_cost(task, "mlp", task.reference_hidden).fwd_flops
    assert abs(task_cost(task, "bspline_kan", hidden).fwd_flops - target) / target <= 0.05
    assert match_hidden(task, "bspline_kan", "none") == (task.reference_hidden, 0.0)


class NaNLayer(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)

    def forward(self, x):
        return self.linear(x) * float("nan")


def test_a_nan_loss_becomes_a_status_row_and_the_sweep_goes_on(tmp_path):
    registry.register("test_nan", description="test", paper="test", block_cost=lambda d, h: Cost(0, 0, 0),
                      defaults={}, validate=lambda d, h: None, layer=NaNLayer,
                      layer_cost=lambda d, h: Cost(d * h + h, 2 * d * h, h))(NaNLayer)
    try:
        out = tmp_path / "acc"
        code = main(["run", "--out", str(out), "--no-progress", "--harness", "accuracy", "--tasks", "digits",
                     "--variants", "test_nan,mlp", "--seeds", "1", "--match", "none"])
        assert code == 0
        df = pd.read_csv(out / "results.csv", keep_default_na=False)
        bad = df[df.variant == "test_nan"]
        assert set(bad.status) == {"error"} and "non-finite training loss" in bad.message.iloc[0]
        good = df[(df.variant == "mlp") & (df.metric == "test_accuracy")]
        assert set(good.status) == {"ok"} and float(good.value.iloc[0]) > 0.8
    finally:
        registry.unregister("test_nan")


def test_accuracy_rows_per_seed_and_aggregates(tmp_path):
    out = tmp_path / "acc"
    code = main(["run", "--out", str(out), "--no-progress", "--harness", "accuracy", "--tasks", "digits",
                 "--variants", "mlp,spark_ffn", "--seeds", "2"])
    assert code == 0
    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    mlp = df[(df.variant == "mlp") & (df.metric == "test_accuracy")]
    assert sorted(mlp[mlp.stat == "value"].seed.tolist()) == [0, 1]
    assert set(mlp[mlp.stat != "value"].stat) == {"mean", "std"}
    for metric in ("best_val_step", "train_time", "train_step_time", "flops_per_example", "best_val_accuracy"):
        assert metric in set(df[df.variant == "mlp"].metric)
    per_step = df[(df.variant == "mlp") & (df.metric == "train_step_time")].value.astype(float)
    total = df[(df.variant == "mlp") & (df.metric == "train_time")].value.astype(float)
    steps = get_task("digits").steps_quick  # a step's median time is positive and within the whole loop's mean
    assert (per_step > 0).all() and (per_step.to_numpy() <= total.to_numpy() * 1e3 / steps * 1.5).all()
    spark = df[df.variant == "spark_ffn"]
    assert set(spark.status) == {"skipped"} and "block form" in spark.message.iloc[0]


def test_unknown_task_is_a_clear_error(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path / "x"), "--tasks", "imagenet", "--no-progress"]) == 2
    assert "unknown task 'imagenet'. Known tasks: digits" in " ".join(capsys.readouterr().out.split())
    assert main(["run", "--out", str(tmp_path / "y"), "--tasks", "digts", "--no-progress"]) == 2
    assert "Did you mean 'digits'?" in capsys.readouterr().out


def test_the_training_optimizer_is_torchs_adamw_fused_where_torch_has_it():
    g = torch.Generator().manual_seed(0)
    params = [nn.Parameter(torch.randn(5, 3, generator=g)), nn.Parameter(torch.randn(3, generator=g))]
    twins = [nn.Parameter(p.detach().clone()) for p in params]
    fused = training.adamw(params, 1e-2, 1e-2)
    plain = torch.optim.AdamW(twins, lr=1e-2, weight_decay=1e-2, foreach=False)
    for _ in range(5):
        for p, q in zip(params, twins, strict=True):
            p.grad = torch.randn(p.shape, generator=g)
            q.grad = p.grad.clone()
        fused.step()
        plain.step()
    for p, q in zip(params, twins, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    if tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4):  # torch's fused AdamW on a CPU
        assert fused.defaults["fused"] is True


@pytest.mark.parametrize("busy_runs, status, retakes", [(1, "ok", 1), (9, "noisy", accuracy.RETAKES)])
def test_a_final_run_the_machine_disturbed_is_trained_again(tmp_path, monkeypatch, busy_runs, status, retakes):
    """Its training time is a figure: a contended final run is trained again from its seed (up to RETAKES more
    times), and the rows say so; still contended after that, its timing rows are ``noisy``."""
    from kanbench.harness.contention import Contention

    calls = []
    real_train = accuracy.train

    def disturbed(*args, **kwargs):
        result = real_train(*args, **kwargs)
        calls.append(kwargs.get("score_test", True))
        if kwargs.get("score_test", True):  # busy as planted (our threads waited half the run), else quiet
            result.contention = Contention(1.0, 0.5 if len(calls) <= busy_runs else 0.0, 0.0, 0.0)
        return result

    monkeypatch.setattr(accuracy, "train", disturbed)
    out = tmp_path / "acc"
    assert main(["run", "--out", str(out), "--no-progress", "--harness", "accuracy", "--tasks", "digits",
                 "--variants", "mlp", "--seeds", "1", "--match", "none", "--protocol", "uniform"]) == 0
    assert calls == [True] * (1 + retakes)
    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    timed = df[df.metric.isin(["train_time", "train_step_time"])]
    assert len(timed) == 2 and set(timed.status) == {status}
    assert timed.message.str.contains(f"trained again {retakes} time").all()
    whole = timed[timed.metric == "train_time"].message.iloc[0]
    assert whole.startswith("the whole loop: 400 steps, the validation every 100")  # what the figure covers
    assert set(df[df.metric == "test_accuracy"].status) == {"ok"}
