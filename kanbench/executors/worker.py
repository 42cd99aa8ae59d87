"""What a remote worker does with one batch of units: measure it with the very harness code a local run uses, in a
context that keeps its rows and timing samples in memory, and return them (with the node's environment) to the
driver, which alone writes the run's files."""

from __future__ import annotations

import io
import time
from typing import Any

import torch

from kanbench.harness.base import Harness, Unit
from kanbench.harness.context import MemoryWriter, RunContext, node_name
from kanbench.harness.env import environment, measure_ceilings

_NODE_ENV: dict[tuple, dict[str, Any]] = {}  # per worker process, device and dtypes: measured once


def node_environment(device: str, dtypes: list[str]) -> dict[str, Any]:
    """This node's environment record (device, driver, versions) and its measured ceilings, cached per process."""
    key = (device, *dtypes)
    if key not in _NODE_ENV:
        env = environment(device, None)
        env["ceilings"] = measure_ceilings(device, dtypes)
        _NODE_ENV[key] = env
    return _NODE_ENV[key]


def measure_batch(plan: Any, harness: Harness, batch: list[Unit], run_id: str, session: int,
                  gates: list[dict[str, Any]]) -> dict[str, Any]:
    """The batch's rows and samples, measured here. ``gates``: the gate verdicts on file for these configurations
    (reused, as a local resumed run does)."""
    started = time.time()
    torch.set_num_threads(plan.threads)
    device = batch[0][0].device
    env = node_environment(device, sorted({u[0].dtype for u in batch}))
    rows, samples = rows_in_memory(plan, harness, batch, run_id, session, env["ceilings"], gates)
    return {"rows": rows, "samples": samples, "node": node_name(), "env": env, "started": started,
            "ended": time.time()}


def rows_in_memory(plan: Any, harness: Harness, batch: list[Unit], run_id: str, session: int,
                   ceilings: dict[str, float], gates: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The batch's rows and timing samples (CSV text), measured in this process by the harness's own code in a
    context that keeps them in memory, for the driver to write."""
    writer, samples = MemoryWriter(), io.StringIO()
    ctx = RunContext(plan, None, run_id, ceilings, session, writer, gates, samples=samples)
    for rows in harness.rows(ctx, batch):
        writer.write(rows)
    ctx.release()
    return writer.rows, samples.getvalue()
