"""What the GPU is doing around a run, read with ``nvidia-smi``: how busy it is, its clocks against their maximum,
why the driver holds them back (power cap, thermal slowdown), temperature, power, and the compute processes on it.

The CPU's contention is measured around every timed slot (harness/contention.py); a GPU shared with another job, or
held below its clocks by a power or thermal limit, slows every kernel with nothing in the timings to show it. So
``kanbench run`` on a GPU records this state at the start and at the end of each session (env.json's ``sessions``)
and warns before measuring when another job keeps the GPU busy. Where nvidia-smi is missing or answers with
something unexpected, the state is None: reading it must never stop a run.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

import torch

# utilization.gpu over nvidia-smi's last sample period before the run: above this, another job is using the GPU
BUSY_PERCENT = 10
FIELDS = ("utilization.gpu", "clocks.sm", "clocks.max.sm", "clocks.mem", "clocks.max.mem", "temperature.gpu",
          "power.draw", "power.limit")
# the clock-event (formerly "throttle") reasons, as NVML defines their bits
REASONS = {0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap", 0x8: "hw_slowdown",
           0x10: "sync_boost", 0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown",
           0x80: "hw_power_brake_slowdown", 0x100: "display_clock_setting"}
# the reasons field's name in current drivers, then its older name; without either the state has no reasons
REASON_FIELDS = ("clocks_event_reasons.active", "clocks_throttle_reasons.active", None)


def _smi(args: list[str]) -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # "[N/A]", "[Not Supported]"
        return None


def reason_names(mask: int) -> list[str]:
    """The names of the clock-event reasons set in ``mask`` (unknown bits as hex)."""
    names = [name for bit, name in REASONS.items() if mask & bit]
    unknown = mask & ~sum(REASONS)
    return names + ([hex(unknown)] if unknown else [])


def gpu_ids(device: str | torch.device) -> list[str]:
    """The GPU as nvidia-smi's ``--id`` may name it: its UUID, then torch's index where CUDA_VISIBLE_DEVICES has not
    renumbered the GPUs (nvidia-smi's indices ignore it)."""
    index = torch.device(device).index
    index = torch.cuda.current_device() if index is None else index
    try:
        uuid = torch.cuda.get_device_properties(index).uuid
    except (AttributeError, RuntimeError):
        uuid = None
    text = str(uuid) if uuid else ""
    ids = [text if text.startswith("GPU-") else f"GPU-{text}"] if text else []
    return ids + ([] if os.environ.get("CUDA_VISIBLE_DEVICES") else [str(index)])


def snapshot(device: str) -> dict[str, Any] | None:
    """:func:`read_state` of ``device``'s GPU; None on a CPU, or wherever it cannot be read."""
    if torch.device(device).type != "cuda":
        return None
    try:
        return next(filter(None, map(read_state, gpu_ids(device))), None)
    except Exception:  # a record beside the figures: never a reason for a run to stop
        return None


def read_state(gpu: str) -> dict[str, Any] | None:
    """The GPU's state now (None where nvidia-smi cannot say): the FIELDS by name (numbers; None where not
    supported), ``clock_event_reasons`` (names) and ``compute_processes`` (pid and MiB of each)."""
    for reason_field in REASON_FIELDS:
        fields = FIELDS + ((reason_field,) if reason_field else ())
        line = _smi([f"--id={gpu}", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"])
        if line:
            break
    else:
        return None
    values = [v.strip() for v in line.splitlines()[0].split(",")]
    if len(values) != len(fields):
        return None
    state: dict[str, Any] = {name: _number(value) for name, value in zip(FIELDS, values, strict=False)}
    if reason_field:
        try:
            state["clock_event_reasons"] = reason_names(int(values[-1], 16))
        except ValueError:
            state["clock_event_reasons"] = None
    apps = _smi([f"--id={gpu}", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"])
    processes = []
    for row in (apps or "").splitlines():
        parts = [p.strip() for p in row.split(",")]
        if len(parts) == 2 and parts[0].isdigit():
            processes.append({"pid": int(parts[0]), "used_mib": _number(parts[1])})
    state["compute_processes"] = processes if apps is not None else None
    return state


def busy_before_run(state: dict[str, Any] | None) -> str | None:
    """Why the GPU looks busy with another job before the run started (kanbench has launched nothing yet), or
    None."""
    if not state or state.get("utilization.gpu") is None or state["utilization.gpu"] < BUSY_PERCENT:
        return None
    processes = state.get("compute_processes")
    who = f", {len(processes)} compute process(es) on it" if processes else ""
    return f"the GPU is {state['utilization.gpu']:.0f}% utilized before the run{who}"


def describe(state: dict[str, Any] | None) -> str | None:
    """One line for a log: utilization, SM clock against its maximum, reasons, temperature, power."""
    if not state:
        return None
    parts = [f"{state['utilization.gpu']:.0f}% utilized" if state.get("utilization.gpu") is not None else None]
    if state.get("clocks.sm") is not None and state.get("clocks.max.sm"):
        parts.append(f"SM clock {state['clocks.sm']:.0f} of {state['clocks.max.sm']:.0f} MHz")
    if state.get("clock_event_reasons"):
        parts.append("clocks held by " + "+".join(state["clock_event_reasons"]))
    if state.get("temperature.gpu") is not None:
        parts.append(f"{state['temperature.gpu']:.0f} °C")
    if state.get("power.draw") is not None and state.get("power.limit"):
        parts.append(f"{state['power.draw']:.0f} of {state['power.limit']:.0f} W")
    return ", ".join(p for p in parts if p) or None
