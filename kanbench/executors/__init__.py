"""Where a run's units are measured: in the ``kanbench run`` process (``local``, the default), or as tasks on a Ray
cluster (``ray``, :mod:`kanbench.executors.ray_tasks`, the ``kanbench[ray]`` extra). Measurement itself is the
harnesses' (the same code on every worker); an executor only decides where it runs and brings the rows back."""

from __future__ import annotations

from typing import Any

EXECUTORS = ("local", "ray")


def get_executor(name: str, address: str | None = None) -> Any:
    """None for ``local`` (the runner measures in-process); the Ray executor connected to ``address`` (None: a
    local Ray started for this run) for ``ray``. Errors say what to install or why the address fails."""
    if name == "local":
        if address:
            raise ValueError("--ray-address needs --executor ray.")
        return None
    if name == "ray":
        from kanbench.executors.ray_tasks import RayExecutor

        return RayExecutor(address)
    raise ValueError(f"unknown executor '{name}'; executors: {', '.join(EXECUTORS)}.")
