"""The accuracy protocol: input preparations fitted on training data only, each variant's declared preparation
applied, the per-variant search choosing on validation alone, convergence counted right, resume across the search,
and the mnist1d-reference anchor. Training is replaced by a stand-in where the test is about the harness's logic."""

import json

import pandas as pd
import pytest
import torch

from kanbench import registry
from kanbench.cli import main
from kanbench.data.prepare import prepare
from kanbench.data.splits import Split
from kanbench.harness import accuracy, anchor, tuning
from kanbench.harness.training import TrainResult
from kanbench.preparation import MINMAX_UNIT, STANDARDIZE, Preparation
from kanbench.report.protocol import protocol_table


def split_with(train, val, test):
    return Split((train, torch.zeros(len(train))), (val, torch.zeros(len(val))), (test, torch.zeros(len(test))))


@pytest.mark.parametrize("prep", [MINMAX_UNIT, STANDARDIZE, Preparation("minmax", -1.0, 1.0)])
def test_a_preparation_is_fitted_on_the_training_split_alone(prep):
    g = torch.Generator().manual_seed(0)
    train = torch.rand(200, 5, generator=g) * 4 + 1
    val, test = torch.rand(50, 5, generator=g) * 4 + 1, torch.rand(50, 5, generator=g) * 4 + 1
    first = prepare(split_with(train, val, test), prep)
    second = prepare(split_with(train, val * 100, test - 50), prep)  # wild held-out data moves nothing fitted
    assert torch.equal(first.train[0], second.train[0])
    if prep.kind == "minmax":
        assert float(first.train[0].min()) == pytest.approx(prep.low) and float(first.train[0].max()) == prep.high
        scale = (prep.high - prep.low) / float(train.max() - train.min())  # the held-out data use the same map
        assert torch.allclose(first.val[0], (val - train.min()) * scale + prep.low)
    else:
        assert torch.allclose(first.train[0].mean(0), torch.zeros(5), atol=1e-5)
        assert torch.allclose(first.test[0], (test - train.mean(0)) / (train.std(0) + 0.1))


def test_every_variant_declares_the_same_search_budget():
    budgets = {v: len(tuning.candidates(accuracy.get_task("digits"), v, "tuned")) for v in registry.list_variants()}
    assert set(budgets.values()) == {2 * len(tuning.LEARNING_RATES)}, budgets
    block_task = accuracy.get_task("char-lm")
    assert {len(tuning.candidates(block_task, v, "tuned")) for v in registry.list_variants()} == {3}
    assert registry.get_variant("relu_kan").preparations[0] is MINMAX_UNIT  # the authors' own first


class StandIn:
    """Replaces training: validation favours lr 3e-3 and the variant's first preparation, test favours lr 1e-3
    (so a choice made on test would differ); records what each run was given."""

    def __init__(self):
        self.calls = []

    def __call__(self, task, model, data, steps, seed, device, lr, score_test=True):
        x = data.split.train[0]
        first = float(x.min()) == pytest.approx(0.0, abs=1e-6) and float(x.max()) == pytest.approx(1.0)
        self.calls.append({"lr": lr, "score_test": score_test, "seed": seed, "model": model,
                           "train_min": float(x.min()), "train_max": float(x.max())})
        val = {1e-3: 0.5, 3e-3: 0.9, 1e-2: 0.7}[lr] + (0.05 if first else 0.0)
        test = ({1e-3: 0.99, 3e-3: 0.2, 1e-2: 0.1}[lr] + seed * 0.01) if score_test else None
        best_step = steps if seed == 0 else steps // 2  # seed 0 improved to the end, seed 1 stopped early
        return TrainResult(test, val, best_step, 2.0, 1.0, 0.1, 0.001)


# The stand-in records its calls in this process: one thread keeps the search runs here too (a run with more spreads
# them over worker processes: tests/test_executor_pool.py).
ONE_THREAD = ["--threads", "1"]


def run_tuned(tmp_path, monkeypatch, variants, resume=False):
    stand_in = StandIn()
    monkeypatch.setattr(accuracy, "train", stand_in)
    out = tmp_path / "acc"
    args = ["run", "--out", str(out), "--no-progress", "--no-report", "--harness", "accuracy", "--tasks", "digits",
            "--variants", variants, "--seeds", "2", *ONE_THREAD]
    assert main(args + (["--resume"] if resume else [])) == 0
    return stand_in, pd.read_csv(out / "results.csv", keep_default_na=False)


def test_the_search_chooses_on_validation_and_never_scores_test(tmp_path, monkeypatch):
    stand_in, df = run_tuned(tmp_path, monkeypatch, "relu_kan")
    search = [c for c in stand_in.calls if not c["score_test"]]
    assert len(search) == 6 and {c["seed"] for c in search} == {0}  # lr × preparation, seed 0 only
    assert len(stand_in.calls) == 8  # then the two seeds, each scored on test once
    finals = df[(df["mode"] == "digits") & (df.metric == "test_accuracy") & (df.stat == "value")]
    chosen = [json.loads(h) for h in finals.hparams]
    assert chosen == [{"lr": 0.003, "prep": "minmax[0,1]"}] * 2  # validation's choice, not test's (lr 1e-3)
    assert not (df["mode"].str.startswith("search:") & df.metric.str.startswith("test_")).any()
    # the declared preparation reached the training data: min-max onto [0, 1] from the training split
    final_calls = [c for c in stand_in.calls if c["score_test"]]
    assert all(c["train_min"] == pytest.approx(0.0, abs=1e-6) and c["train_max"] == pytest.approx(1.0)
               for c in final_calls)


def test_convergence_is_the_share_of_seeds_whose_best_step_came_before_the_last(tmp_path, monkeypatch):
    _, df = run_tuned(tmp_path, monkeypatch, "mlp")
    converged = df[(df.metric == "converged") & (df.variant == "mlp")]
    assert len(converged) == 1 and float(converged.value.iloc[0]) == 0.5
    assert "in 1 of 2 seeds" in converged.message.iloc[0]


def test_a_preparations_layer_hyperparameters_reach_the_model(tmp_path, monkeypatch):
    stand_in, df = run_tuned(tmp_path, monkeypatch, "bspline_kan")
    wide = [c for c in stand_in.calls if float(c["model"][0].grid.max()) > 3]  # (-3, 3) plus the order's knots
    assert len(wide) == 3 and all(c["train_max"] > 1.5 for c in wide)  # the three standardize candidates
    narrow = [c for c in stand_in.calls if float(c["model"][0].grid.max()) < 3]
    assert all(c["train_min"] == pytest.approx(-1.0) and c["train_max"] == pytest.approx(1.0) for c in narrow)
    rows = df[(df["mode"] == "search:digits") & df.hparams.str.contains("standardize")]
    assert set(rows.hparams.map(lambda h: tuple(json.loads(h)["grid_range"]))) == {(-3.0, 3.0)}


def test_resume_after_the_search_completes_the_seeds_without_repeating_anything(tmp_path, monkeypatch):
    _, full = run_tuned(tmp_path, monkeypatch, "mlp")
    path = tmp_path / "acc" / "results.csv"
    full[full["mode"].str.startswith("search:")].to_csv(path, index=False)  # interrupted after the search
    stand_in, resumed = run_tuned(tmp_path, monkeypatch, "mlp", resume=True)
    assert [c["score_test"] for c in stand_in.calls] == [True, True]  # only the two seeds ran
    keys = resumed[resumed.stat == "value"][["mode", "metric", "seed", "hparams"]]
    assert not keys.duplicated().any()
    assert len(resumed[resumed.stat == "value"]) == len(full[full.stat == "value"])


def test_uniform_protocol_is_one_shared_recipe(tmp_path, monkeypatch):
    stand_in = StandIn()
    monkeypatch.setattr(accuracy, "train", stand_in)
    out = tmp_path / "u"
    assert main(["run", "--out", str(out), "--no-progress", "--no-report", "--harness", "accuracy", "--tasks",
                 "digits", "--variants", "relu_kan", "--seeds", "1", "--protocol", "uniform", *ONE_THREAD]) == 0
    assert [c["lr"] for c in stand_in.calls] == [accuracy.get_task("digits").lr]
    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert json.loads(df.hparams.iloc[0]) == {"lr": 0.001, "prep": "standardize"}


def test_the_anchor_reproduces_the_mnist1d_authors_mlp(tmp_path):
    """The mnist1d authors' MLP with their recipe lands within the tolerance of their published 68 %."""
    out = tmp_path / "anchor"
    assert main(["run", "--out", str(out), "--no-progress", "--no-report", "--harness", "accuracy", "--tasks",
                 "mnist1d-reference", "--variants", "all", "--seeds", "1"]) == 0
    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert set(df.variant) == {"mlp"}  # once, beside the baseline
    row = df[(df.metric == "test_accuracy") & (df.stat == "value")].iloc[0]
    assert row.status == "ok" and abs(float(row.value) - anchor.PUBLISHED) <= anchor.TOLERANCE, row.message
    assert int(row.params) == 40 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10


def test_an_anchor_outside_the_tolerance_is_a_mismatch(tmp_path, monkeypatch):
    monkeypatch.setattr(anchor, "train_reference", lambda seed, steps: (0.5, 15210))
    out = tmp_path / "anchor"
    assert main(["run", "--out", str(out), "--no-progress", "--no-report", "--harness", "accuracy", "--tasks",
                 "mnist1d-reference", "--seeds", "1"]) == 0
    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    row = df[df.metric == "test_accuracy"].iloc[0]
    assert row.status == "mismatch" and "gap -0.180" in row.message


def test_tasks_run_one_after_another_so_an_interrupted_sweep_holds_whole_tasks(tmp_path, monkeypatch):
    stand_in = StandIn()
    monkeypatch.setattr(accuracy, "train", stand_in)
    out = tmp_path / "two"
    assert main(["run", "--out", str(out), "--no-progress", "--no-report", "--harness", "accuracy", "--tasks",
                 "digits,kan-fit:product", "--variants", "mlp", "--seeds", "2", *ONE_THREAD]) == 0
    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    order = list(dict.fromkeys(df[df.stat == "value"]["mode"]))
    assert order == ["search:digits", "digits", "search:kan-fit:product", "kan-fit:product"]


def test_the_protocol_table_lists_the_search_in_candidate_order_whatever_order_the_rows_came_in(tmp_path,
                                                                                                  monkeypatch):
    _, df = run_tuned(tmp_path, monkeypatch, "relu_kan")
    search = df[df["mode"] == "search:digits"]
    shuffled = pd.concat([df[df["mode"] != "search:digits"], search.sample(frac=1, random_state=3)])
    assert list(shuffled[shuffled["mode"] == "search:digits"].hparams) != list(search.hparams)
    table = protocol_table(shuffled)
    # the stand-in's validation: lr 1e-3, 3e-3, 1e-2 → 0.5, 0.9, 0.7, plus 0.05 for relu_kan's first preparation
    assert table["search (val)"].iloc[0] == "0.55 / 0.95 / 0.75 / 0.5 / 0.9 / 0.7"
