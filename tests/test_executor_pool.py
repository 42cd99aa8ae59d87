"""The local runner's pool for units that time nothing (kanbench.executors.pool): those units run in forked
single-threaded workers, all of them before any timed unit, which runs in the runner's process alone; a run on one
thread keeps everything in-process; a worker's death costs only the units then running; a variant registered at run
time is known to the workers. And the accuracy harness's part: search runs untimed and single-threaded wherever
they run, final runs timed on the run's threads."""

import os
import pickle
import time

import pandas as pd
import pytest
import torch

from kanbench import registry
from kanbench.cli import main
from kanbench.costs import Cost
from kanbench.executors import pool
from kanbench.harness import accuracy, base
from kanbench.harness.plan import make_plan
from kanbench.harness.presets import get_preset
from kanbench.harness.results import Config
from kanbench.harness.runner import Runner

pytestmark = pytest.mark.skipif(not pool.can_fork(), reason="the pool forks its workers: Linux only")


class Mixed(base.Harness):
    """Two units per configuration, one timed and one not; each row says where, when and on how many threads it
    ran, and which variants the process knew."""

    name = "test_mixed"
    die_on = ""  # the variant whose untimed unit kills its worker

    def units(self, plan):
        return [(config, self.name, mode) for config, _ in plan.items for mode in ("untimed", "timed")]

    def times(self, unit):
        return unit[2] == "timed"

    def rows(self, ctx, batch):
        config, _, mode = batch[0]
        if mode == "untimed" and config.variant == self.die_on:
            os._exit(1)  # the worker dies mid-unit, as if OOM-killed
        started = time.time()
        # untimed units outlast the pool noticing a dead worker (measured over 50 ms once on a loaded 2-core VM:
        # the sibling had finished and the next unit was handed to the broken pool), so which units are "then
        # running" when one dies is fixed: the dying one and its sibling
        time.sleep(0.5 if mode == "untimed" else 0.05)
        known = "test_runtime_variant" in registry.list_variants()
        message = f"{os.getpid()} {torch.get_num_threads()} {started} {time.time()} {known}"
        return [[ctx.row(config, self.name, mode, "where", 1.0, "", message=message)]]


@pytest.fixture
def mixed():
    harness = Mixed()
    base._HARNESSES[Mixed.name] = harness
    yield harness
    base._HARNESSES.pop(Mixed.name)


VARIANTS = ["mlp", "glu", "relu_kan", "bspline_kan", "grkan"]


def run_mixed(tmp_path, threads):
    plan = make_plan(get_preset("default"), VARIANTS, ["reference"], "cpu", ["fp32"], [32], [32], None,
                     [Mixed.name], threads=threads, decode_tokens=[])
    Runner(plan, tmp_path, "test", {}, resume=False, untimed=pool.untimed_pool(threads)).run(progress=False)
    df = pd.read_csv(tmp_path / "results.csv", keep_default_na=False)
    parts = df.message.where(df.status == "ok", "nan nan nan nan False").str.split(" ", n=4, expand=True)
    return df.assign(pid=parts[0].astype(float), threads=parts[1].astype(float), start=parts[2].astype(float),
                     end=parts[3].astype(float), knew=parts[4] == "True")


def test_untimed_units_run_in_single_threaded_workers_before_anything_is_timed(tmp_path, mixed):
    registry.register("test_runtime_variant", description="test", paper="test", block_cost=lambda d, h: Cost(0, 0, 0),
                      defaults={}, validate=lambda d, h: None)(torch.nn.Identity)
    threads = torch.get_num_threads()
    try:
        df = run_mixed(tmp_path, threads=2)
    finally:
        registry.unregister("test_runtime_variant")
    untimed, timed = df[df["mode"] == "untimed"], df[df["mode"] == "timed"]
    assert len(untimed) == len(timed) == len(VARIANTS) and set(df.status) == {"ok"}
    assert (untimed.pid != os.getpid()).all() and set(untimed.threads) == {1.0}
    assert untimed.pid.nunique() == 2  # both workers took units
    assert (timed.pid == os.getpid()).all()
    assert untimed.end.max() <= timed.start.min()  # nothing timed ran while a worker was busy
    assert untimed.knew.all()  # a forked worker knows what was registered at run time
    assert torch.get_num_threads() == threads


def test_a_run_on_one_thread_measures_everything_in_its_own_process(tmp_path, mixed):
    df = run_mixed(tmp_path, threads=1)
    assert (df.pid == os.getpid()).all() and len(df) == 2 * len(VARIANTS)


def test_a_dead_worker_costs_only_the_units_then_running(tmp_path, mixed):
    mixed.die_on = "relu_kan"
    df = run_mixed(tmp_path, threads=2)
    untimed = df[df["mode"] == "untimed"]
    assert len(untimed) == len(VARIANTS) and not untimed.duplicated(["variant"]).any()
    dead = untimed[untimed.variant == "relu_kan"].iloc[0]
    assert dead.status == "error" and "a worker process died while this unit ran" in dead.message
    lost = untimed[untimed.status == "error"]
    assert len(lost) <= 2  # the dying unit and at most the one beside it; a fresh pool took the rest
    assert (untimed[untimed.variant.isin(["mlp", "grkan"])].status == "ok").all()
    assert (df[df["mode"] == "timed"].status == "ok").all()


def test_search_runs_are_untimed_and_single_threaded_and_final_runs_use_every_thread(tmp_path, monkeypatch):
    """In-process (no fork) so that the spy sees every call; the workers get the same rule from the harness."""
    seen = []
    real_train = accuracy.train

    def spy(task, model, data, steps, seed, device, lr, score_test=True):
        seen.append((score_test, torch.get_num_threads()))
        return real_train(task, model, data, 20, seed, device, lr, score_test)

    monkeypatch.setattr(accuracy, "train", spy)
    monkeypatch.setattr(pool, "can_fork", lambda: False)
    out = tmp_path / "acc"
    assert main(["run", "--out", str(out), "--no-progress", "--no-report", "--harness", "accuracy", "--tasks",
                 "digits", "--variants", "mlp", "--seeds", "1", "--threads", "2"]) == 0
    finals = [call for call in seen if call[0]]  # a final run the machine disturbed is trained again
    assert sorted(seen) == [(False, 1)] * 6 + finals and finals[:1] == [(True, 2)]
    assert len(set(finals)) == 1 and len(finals) <= 1 + accuracy.RETAKES
    assert torch.get_num_threads() == 2
    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    search = set(df[df["mode"] == "search:digits"].metric)
    final = set(df[df["mode"] == "digits"].metric)
    assert {"train_time", "train_step_time"} <= final and not {"train_time", "train_step_time"} & search
    harness = base.get_harness("accuracy")
    assert [harness.times(u) for u in [(None, "accuracy", "search:digits"), (None, "accuracy", "digits")]] == \
        [False, True]


def test_a_configuration_a_harness_has_used_still_reaches_the_workers():
    """Configurations cache their registry lookups (constructors, some of them local functions); what a worker
    receives is the fields, resolved again there."""
    for variant in registry.list_variants():
        config = Config(variant, "reference", "block", "cpu", "fp32", 8, 16, 32, {}, 0)
        _ = config.spec, config.impl_spec, config.full_hparams
        again = pickle.loads(pickle.dumps(config))
        assert again == config and again.full_hparams == config.full_hparams


def test_the_search_runs_in_the_workers_after_other_harnesses_used_the_plan(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--no-progress", "--no-report", "--harness", "flops,accuracy", "--tasks",
                 "digits", "--variants", "mlp", "--tokens", "8", "--d-model", "16", "--seeds", "1",
                 "--threads", "2"]) == 0
    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    search = df[(df["mode"] == "search:digits") & (df.metric == "best_val_accuracy")]
    assert len(search) == 6 and set(search.status) == {"ok"}, set(df.message)
    assert (df[(df["mode"] == "digits") & (df.metric == "test_accuracy")].status == "ok").all()


def test_where_no_worker_can_be_forked_the_units_run_in_the_runners_process(tmp_path, mixed, monkeypatch):
    def cannot_fork(self, *call):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(pool.UntimedPool, "_submit", cannot_fork)
    df = run_mixed(tmp_path, threads=2)
    assert len(df) == 2 * len(VARIANTS) and set(df.status) == {"ok"} and (df.pid == os.getpid()).all()


def _children(pid: int) -> set[int]:
    """The live processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for stat in os.listdir("/proc"):
        try:
            fields = open(f"/proc/{stat}/stat").read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if stat.isdigit() and int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat))
    return found


def _gone(pids: set[int], within: float = 10.0) -> bool:
    """Whether ``pids`` all end within ``within`` seconds; those that do not are killed (no test leaves them)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(os.path.exists(f"/proc/{pid}") for pid in pids):
            return True
        time.sleep(0.1)
    for pid in pids:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    return False


HOLDER = """
import sys, time
from kanbench.executors import pool
untimed = pool.untimed_pool(2)
futures = [untimed._submit(time.sleep, 60)[0] for _ in range(2)]
print(" ".join(map(str, untimed._pool._processes)), flush=True)
time.sleep(60)
"""


def test_workers_end_with_a_parent_killed_outright():
    """SIGKILL (the OOM killer, a kill of the run's pid alone) gives the run no chance to shut its pool down; the
    workers, a minute of training each here, must not outlive it."""
    import subprocess
    import sys

    parent = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True)
    workers = set(map(int, parent.stdout.readline().split()))
    assert len(workers) == 2 and workers <= _children(parent.pid)
    parent.kill()
    parent.wait()
    assert _gone(workers), f"workers {workers} outlived their parent"


def test_a_sigterm_during_the_search_ends_the_run_as_ctrl_c_does(tmp_path):
    """``timeout`` or a scheduler sends SIGTERM to the run alone: it stops its workers (not left training), keeps
    its rows, says how to resume and exits 128 + 15."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "run"
    run = subprocess.Popen([sys.executable, "-m", "kanbench.cli", "run", "--harness", "accuracy", "--variants",
                            "mlp,glu,grkan", "--tasks", "digits", "--threads", "2", "--out", str(out),
                            "--no-progress", "--no-report"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, env={**os.environ, "COLUMNS": "200"})
    deadline = time.monotonic() + 120
    while len(workers := _children(run.pid)) < 2 and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.1)
    assert len(workers) == 2, "the search never reached the pool"
    run.send_signal(signal.SIGTERM)
    said, _ = run.communicate(timeout=60)
    assert run.returncode == 128 + signal.SIGTERM, said
    assert f"interrupted (SIGTERM): the rows so far are in {out / 'results.csv'}" in said
    assert _gone(workers, within=5)
    pd.read_csv(out / "results.csv")  # whole rows only
