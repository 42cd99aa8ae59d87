"""``kanbench run --executor ray``: every batch of units (the same units ``--resume`` keys) a Ray task.

Resources, and why no unit is timed beside another on its cores: a CPU batch asks for ``num_cpus`` = the run's
torch thread count (one, if it times nothing: accuracy's search runs), a CUDA batch for ``num_gpus=1`` (and one
CPU to drive it). Ray never runs tasks whose requests
add up to more than a node has, so on a node whose logical CPUs are its physical cores (the local Ray this
executor starts, or ``ray start --num-cpus=<cores>``) the concurrently running units' threads never outnumber the
cores, and a GPU is never shared. What does share a machine anyway (another user's job) is what the latency
harness's contention check catches: it re-measures, then marks the row ``noisy``.

Faults: a worker that dies mid-batch (OOM-killed, node lost) is retried once by Ray (``max_retries=1``); a second
death becomes an ``error`` row per unit naming the node it died on. Each task reports its node when it starts (a
Ray queue), so the driver knows where a lost task was. Ctrl-C cancels every pending task; the CSV holds whole units
only (the driver writes each unit's rows at once), so ``--resume`` completes it, locally or on Ray.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kanbench.executors.worker import measure_batch
from kanbench.harness.base import Harness, Unit

INSTALL = "pip install -e '.[ray]'   (or: pip install 'kanbench[ray]')"
RETRIES = 1


def require_ray() -> Any:
    if importlib.util.find_spec("ray") is None:
        raise ValueError(f"--executor ray needs Ray, which is not installed: {INSTALL}")
    import ray

    return ray


def check_reachable(address: str, timeout: float = 3.0) -> None:
    """Fail in one line, before Ray's own long retries, when nothing listens at ``host:port``."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host or address, int(port or 6379)), timeout=timeout).close()
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot reach a Ray cluster at {address} ({err}); start one with `ray start --head` "
                         f"there, or check the address (the head's host:port, default port 6379).") from None


def physical_cores() -> int:
    """Distinct (package, core) pairs among the CPUs this process may use (Linux sysfs); else os.cpu_count()."""
    cores = set()
    for cpu in os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else ():
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topology / "physical_package_id").read_text(), (topology / "core_id").read_text()))
        except OSError:
            return os.cpu_count() or 1
    return len(cores) or os.cpu_count() or 1


def resources(plan: Any, batch: list[Unit], harness: Harness | None = None) -> dict[str, float]:
    """What a batch asks Ray for: a whole GPU for CUDA work; one CPU for a batch that times nothing (``harness``
    says so: accuracy's search runs, which train on one thread), so that such batches share a node's cores with
    each other but never with a timed one; the run's thread count in CPUs otherwise."""
    if batch[0][0].device.startswith("cuda"):
        return {"num_gpus": 1, "num_cpus": 1}
    if harness is not None and harness.times_nothing(batch):
        return {"num_cpus": 1}
    return {"num_cpus": plan.threads}


def _started_then_measure(queue: Any, index: int, *args: Any) -> dict[str, Any]:
    from kanbench.harness.context import node_name

    queue.put((index, node_name()))  # where this attempt runs, in case it dies there
    return measure_batch(*args)


class RayExecutor:
    def __init__(self, address: str | None = None) -> None:
        ray = require_ray()
        self.ray = ray
        self.started = not ray.is_initialized()  # shut down at the end only a Ray this run started
        if self.started:
            if address:
                check_reachable(address)
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            else:  # a local Ray for this run: one logical CPU per physical core
                ray.init(num_cpus=physical_cores(), include_dashboard=False, log_to_driver=False)
        self.task = ray.remote(_started_then_measure)
        self.queue: Any = None  # started with the first round: one small actor for the whole run
        self.submitted = 0  # batches submitted so far: each one's id in the queue, unique across rounds
        self.nodes: dict[str, dict[str, Any]] = {}  # node → its environment, for env.json
        self.spans: list[tuple[float, float, str]] = []  # (start, end, node) per batch, for the overlap check

    def run_round(self, runner: Any, harness: Harness, batches: list[list[Unit]],
                  advance: Callable[[int], None]) -> None:
        from ray.util.queue import Queue

        ray = self.ray
        if self.queue is None:
            self.queue = Queue()
        queue = self.queue
        self.check_feasible([resources(runner.plan, batch, harness) for batch in batches])
        gates = [r for r in runner.recorded if r["harness"] == "correctness"]
        pending: dict[Any, tuple[int, list[Unit]]] = {}
        for index, batch in enumerate(batches, start=self.submitted):
            options = {**resources(runner.plan, batch, harness), "max_retries": RETRIES, "retry_exceptions": False}
            ref = self.task.options(**options).remote(queue, index, runner.plan, harness, batch, runner.ctx.run_id,
                                                      runner.ctx.session, gates)
            pending[ref] = (index, batch)
        self.submitted += len(batches)
        where: dict[int, str] = {}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                index, batch = pending.pop(done[0])
                try:
                    result = ray.get(done[0])
                except ray.exceptions.RayError as err:  # the worker died on both attempts
                    while not queue.empty():
                        i, node = queue.get()
                        where[i] = node
                    runner.record(self.lost_rows(runner, harness, batch, where.get(index, "unknown"), err))
                else:
                    self.nodes[result["node"]] = result["env"]
                    self.spans.append((result["started"], result["ended"], result["node"]))
                    runner.record(result["rows"], result["samples"])
                advance(len(batch))
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    def check_feasible(self, requests: list[dict[str, float]]) -> None:
        """A request no node can ever satisfy would wait for ever: say which flag to change instead."""
        nodes = [n["Resources"] for n in self.ray.nodes() if n.get("Alive")]
        most_cpus = max((n.get("CPU", 0) for n in nodes), default=0)
        most_gpus = max((n.get("GPU", 0) for n in nodes), default=0)
        cpus = max((r.get("num_cpus", 0) for r in requests), default=0)
        if cpus > most_cpus:
            raise ValueError(f"each unit asks Ray for --threads {cpus:g}, but no node of the cluster has more than "
                             f"{most_cpus:g} CPUs: lower --threads.")
        if any(r.get("num_gpus", 0) for r in requests) and most_gpus < 1:
            raise ValueError("each CUDA unit asks Ray for a whole GPU, but no node of the cluster has one: add GPU "
                             "nodes or measure on --device cpu.")

    @staticmethod
    def lost_rows(runner: Any, harness: Harness, batch: list[Unit], node: str, err: Exception) -> list[dict]:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        rows = []
        for config, _, mode in batch:
            row = runner.ctx.row(config, harness.name, mode, harness.name, None, "", status="error",
                                 message=f"the worker died on node {node}, retried {RETRIES} time(s): "
                                         f"{type(err).__name__}: {first_line}")
            rows.append({**row, "node": node})
        return rows

    def close(self) -> None:
        if self.queue is not None and self.ray.is_initialized():
            self.ray.kill(self.queue.actor)
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
