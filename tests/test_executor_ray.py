"""``kanbench run --executor ray`` on a local Ray started by these tests (2 CPUs, no dashboard): the same units and
statuses as a local run, units that never share cores, a killed worker retried (and a twice-killed one an error row
naming its node), Ctrl-C leaving a valid CSV that --resume completes, and the clear errors. CI installs the
``ray`` extra (through ``.[test]``), so these run there."""

import os
import socket
import sys
from pathlib import Path

import pandas as pd
import pytest

from kanbench.cli import main
from kanbench.executors import get_executor, ray_tasks
from kanbench.harness import base
from kanbench.harness.plan import make_plan
from kanbench.harness.presets import get_preset
from kanbench.harness.results import KEY_COLUMNS, Config
from kanbench.harness.runner import Runner

ray = pytest.importorskip("ray", reason="needs the kanbench[ray] extra (CI installs it through .[test])")

SMALL = ["--variants", "mlp,relu_kan", "--harness", "latency,flops,memory", "--tokens", "32", "--d-model", "32",
         "--no-progress", "--no-report", "--threads", "2"]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test harnesses below, for the workers
    yield
    ray.shutdown()


def keyed(path: Path) -> pd.DataFrame:
    """Each row's unit, metric and status; ``noisy`` (measured while the machine was busy, which Ray's own
    processes may cause) counts as measured, like ``ok``."""
    df = pd.read_csv(path, keep_default_na=False)
    return df[[*KEY_COLUMNS, "metric", "stat"]].assign(status=df.status.replace({"noisy": "ok"}))


def test_a_ray_run_has_the_units_and_statuses_of_a_local_run(tmp_path):
    assert main(["run", "--out", str(tmp_path / "local"), *SMALL]) == 0
    assert main(["run", "--out", str(tmp_path / "ray"), *SMALL, "--executor", "ray"]) == 0
    local, remote = keyed(tmp_path / "local" / "results.csv"), keyed(tmp_path / "ray" / "results.csv")
    as_set = lambda df: set(map(tuple, df.astype(str).values.tolist()))  # noqa: E731
    assert as_set(local) == as_set(remote) and len(local) == len(remote)
    rows = pd.read_csv(tmp_path / "ray" / "results.csv", keep_default_na=False)
    env = pd.read_json(tmp_path / "ray" / "env.json", typ="series")
    assert env["executor"] == "ray" and set(rows.node) <= set(env["nodes"]) and set(rows.node) != {""}
    assert all("ceilings" in node for node in env["nodes"].values())


def test_resources_give_a_cpu_unit_its_threads_and_a_cuda_unit_a_whole_gpu():
    plan = make_plan(get_preset("default"), ["mlp"], ["reference"], "cpu", ["fp32"], [32], [32], None, ["flops"],
                     threads=2)
    cpu_unit = (plan.items[0][0], "flops", "fwd_bwd")
    assert ray_tasks.resources(plan, [cpu_unit]) == {"num_cpus": 2}
    cuda = Config("mlp", "reference", "block", "cuda", "fp32", 32, 32, 128, {}, 0)
    assert ray_tasks.resources(plan, [(cuda, "flops", "fwd_bwd")]) == {"num_gpus": 1, "num_cpus": 1}
    accuracy = base.get_harness("accuracy")  # its search runs time nothing and train on one thread
    search, final = (plan.items[0][0], "accuracy", "search:digits"), (plan.items[0][0], "accuracy", "digits")
    assert ray_tasks.resources(plan, [search], accuracy) == {"num_cpus": 1}
    assert ray_tasks.resources(plan, [final], accuracy) == {"num_cpus": 2}


def run_plan(tmp_path, harness_name, threads=2):
    plan = make_plan(get_preset("default"), ["mlp", "glu"], ["reference"], "cpu", ["fp32"], [32], [32], None,
                     [harness_name], threads=threads)
    tmp_path.mkdir(parents=True, exist_ok=True)
    executor = ray_tasks.RayExecutor()
    runner = Runner(plan, tmp_path, "test", {}, resume=False, executor=executor)
    runner.run(progress=False)
    return executor, pd.read_csv(tmp_path / "results.csv", keep_default_na=False)


def test_units_that_ask_for_every_cpu_never_run_side_by_side(tmp_path):
    executor, rows = run_plan(tmp_path, "latency")
    spans = sorted(executor.spans)
    assert len(spans) >= 2 and set(rows.status) <= {"ok", "noisy", "skipped"}
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:], strict=False)), spans


class Killer(base.Harness):
    """A harness whose worker dies (os._exit) while measuring, once per unit or always."""

    name = "test_killer"
    marker_dir: str = ""
    always = False

    def units(self, plan):
        return [(config, self.name, "once") for config, _ in plan.items[:2]]

    def rows(self, ctx, batch):
        config = batch[0][0]
        marker = Path(self.marker_dir) / f"{config.variant}-{config.tokens}.died"
        if self.always or not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)  # the worker process dies mid-unit, as if OOM-killed
        return [[ctx.row(config, self.name, "once", "survived", 1.0, "", message=f"pid {os.getpid()}")]]


@pytest.fixture
def killer(tmp_path):
    harness = Killer()
    harness.marker_dir = str(tmp_path)
    base._HARNESSES[Killer.name] = harness
    yield harness
    base._HARNESSES.pop(Killer.name)


def test_a_worker_killed_during_a_unit_is_retried(tmp_path, killer):
    _, rows = run_plan(tmp_path / "run", Killer.name)
    assert set(rows.status) == {"ok"} and len(rows) == 2
    for row in rows.itertuples():  # each unit's first attempt died; the retry ran in another worker process
        died = int((tmp_path / f"{row.variant}-{row.tokens}.died").read_text())
        assert row.message != f"pid {died}"


def test_a_worker_that_dies_twice_is_an_error_row_naming_its_node(tmp_path, killer):
    killer.always = True
    _, rows = run_plan(tmp_path / "run", Killer.name)
    assert set(rows.status) == {"error"} and len(rows) == 2
    node = socket.gethostname()
    assert all(f"died on node {node}, retried 1 time(s)" in m for m in rows.message)
    assert set(rows.node) == {node}


def test_ctrl_c_cancels_the_tasks_leaves_a_valid_csv_and_resume_completes_it(tmp_path, monkeypatch):
    out = tmp_path / "run"
    cancelled = []
    real_record, real_cancel = Runner.record, ray.cancel

    def interrupt_after_first(self, rows, samples=""):
        real_record(self, rows, samples)
        raise KeyboardInterrupt

    monkeypatch.setattr(Runner, "record", interrupt_after_first)
    monkeypatch.setattr(ray, "cancel", lambda ref, **kw: (cancelled.append(ref), real_cancel(ref, **kw)))
    assert main(["run", "--out", str(out), *SMALL, "--executor", "ray"]) == 130
    assert cancelled  # the tasks still pending were cancelled
    partial = keyed(out / "results.csv")  # a valid CSV holding whole units only
    assert 0 < len(partial)
    monkeypatch.setattr(Runner, "record", real_record)
    assert main(["run", "--out", str(out), *SMALL, "--executor", "ray", "--resume"]) == 0
    assert main(["run", "--out", str(tmp_path / "whole"), *SMALL, "--executor", "ray"]) == 0
    resumed, whole = keyed(out / "results.csv"), keyed(tmp_path / "whole" / "results.csv")
    unit = [*KEY_COLUMNS, "metric", "stat"]
    assert not resumed.duplicated(unit).any()
    assert set(map(tuple, resumed[unit].astype(str).values.tolist())) == \
        set(map(tuple, whole[unit].astype(str).values.tolist()))


def test_clear_errors_without_ray_or_with_an_unreachable_address(tmp_path, monkeypatch, capsys):
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()
    with pytest.raises(ValueError, match=f"cannot reach a Ray cluster at 127.0.0.1:{free}"):
        ray_tasks.check_reachable(f"127.0.0.1:{free}", timeout=1)
    with pytest.raises(ValueError, match="--ray-address needs --executor ray"):
        get_executor("local", "127.0.0.1:6379")
    real = ray_tasks.importlib.util.find_spec
    monkeypatch.setattr(ray_tasks.importlib.util, "find_spec", lambda name: None if name == "ray" else real(name))
    assert main(["run", "--out", str(tmp_path / "x"), *SMALL, "--executor", "ray"]) == 2
    assert "pip install -e '.[ray]'" in " ".join(capsys.readouterr().out.split())


def test_a_unit_no_node_can_hold_is_a_clear_error_not_a_hang(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path / "x"), *SMALL[:-2], "--threads", "3", "--executor", "ray"]) == 2
    assert "no node of the cluster has more than 2 CPUs: lower --threads" in " ".join(capsys.readouterr().out.split())
