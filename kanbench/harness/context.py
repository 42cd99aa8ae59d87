"""What every harness shares during one run: the plan, the modules being measured, the correctness gate (the one
door every measurement passes through), the samples file and a row factory that stamps each row with the run and
the session that measured it."""

from __future__ import annotations

import csv
import socket
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import torch

from kanbench.harness import correctness
from kanbench.harness.results import Config, ResultWriter, row, unit_key

if TYPE_CHECKING:  # the plan imports the accuracy harness, which imports this module
    from kanbench.harness.plan import Plan

OOM_TEXTS = ("out of memory", "can't allocate memory", "defaultcpuallocator")
SAMPLE_COLUMNS = ["run_id", "variant", "impl", "form", "mode", "device", "dtype", "tokens", "d_model", "d_hidden",
                  "hparams", "seed", "method", "sample", "ms"]


def status_of(err: BaseException) -> str:
    """oom for the CUDA caching allocator, the CPU allocator ("DefaultCPUAllocator: can't allocate memory") and
    Python's MemoryError; error for anything else."""
    if isinstance(err, (torch.cuda.OutOfMemoryError, MemoryError)) or any(t in str(err).lower() for t in OOM_TEXTS):
        return "oom"
    return "error"


def describe(err: BaseException) -> str:
    frame = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    where = f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""
    return f"{type(err).__name__}: {err}{where}"


def node_name() -> str:
    """This machine's name in the rows' ``node`` column and env.json's ``nodes``."""
    return socket.gethostname()


class MemoryWriter:
    """A :class:`ResultWriter` that keeps the rows (a remote worker's context returns them to the driver)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def write(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)

    def close(self) -> None:
        pass


class RunContext:
    """``samples``: where timing samples go; by default ``out_dir/samples.csv`` (a remote worker passes a buffer
    whose text it returns to the driver)."""

    def __init__(self, plan: Plan, out_dir: Path, run_id: str, ceilings: dict[str, float], session: int,
                 writer: ResultWriter | MemoryWriter, recorded: list[dict[str, str]],
                 samples: TextIO | None = None) -> None:
        self.plan, self.out_dir, self.run_id, self.ceilings, self.session = plan, out_dir, run_id, ceilings, session
        self.writer = writer
        self.node = node_name()
        # the gate's verdicts already on file: a resumed run reuses them and never writes a second gate row
        self._gates = {unit_key(r): correctness.GateResult(r["status"] == "ok", float(r["value"] or "inf"),
                                                           r["message"], r["status"])
                       for r in recorded if r["harness"] == "correctness"}
        if samples is None:
            samples_path = out_dir / "samples.csv"
            new = not samples_path.exists() or samples_path.stat().st_size == 0
            samples = samples_path.open("a", newline="")
            if new:
                csv.writer(samples).writerow(SAMPLE_COLUMNS)
                samples.flush()
        self._samples_file = samples
        self.samples = csv.writer(self._samples_file)
        self._modules: dict[tuple, torch.nn.Module] = {}

    def row(self, config: Config, harness: str, mode: str, metric: str, value: float | None, unit: str,
            stat: str = "value", params: int | None = None, status: str = "ok", message: str = "") -> dict[str, Any]:
        return row(config, self.run_id, harness, mode, metric, value, unit, stat, params, status, message,
                   self.session, self.node)

    def flush_samples(self) -> None:
        self._samples_file.flush()

    def append_samples(self, text: str) -> None:
        """Samples measured elsewhere (a remote worker's), already in the file's CSV form."""
        self._samples_file.write(text)
        self._samples_file.flush()

    # -- modules -----------------------------------------------------------------------------------------------
    def module(self, config: Config) -> torch.nn.Module:
        """The configuration's module, built once per batch (the run loop releases them between batches)."""
        key = config.key("", "")
        if key not in self._modules:
            self._modules[key] = config.build()
        return self._modules[key]

    def release(self) -> None:
        self._modules.clear()

    # -- the door ----------------------------------------------------------------------------------------------
    def gate(self, config: Config) -> correctness.GateResult:
        """The configuration's gate verdict: recorded on file, or checked now and written as its own row. A
        configuration this run times only without gradients is checked forward only (mode ``check_forward``); a
        full check on file serves it too."""
        backward = self.plan.times_backward(config)
        full, forward = config.key("correctness", "check"), config.key("correctness", "check_forward")
        for key in (full,) if backward else (full, forward):
            if key in self._gates:
                return self._gates[key]
        try:
            result = correctness.gate(config, self.module(config), backward)
        except Exception as err:  # noqa: BLE001 - a gate that cannot run (OOM in float64) measures nothing
            result = correctness.GateResult(False, float("inf"), f"the gate could not run: {describe(err)}",
                                            status_of(err))
        self._gates[full if backward else forward] = result
        value = result.max_error if result.max_error != float("inf") else None
        self.writer.write([self.row(config, "correctness", "check" if backward else "check_forward",
                                    "max_rel_error", value, "relative", status=result.status,
                                    message=result.message)])
        return result

    def refusal(self, config: Config, harness: str, mode: str, timed: bool = False) -> list[dict[str, Any]] | None:
        """The row that stands instead of a measurement, or None when the configuration may be measured: the impl
        cannot run here (skipped), the gate rejected it (its status, in every harness), or a timing (``timed``)
        would only measure an emulator (skipped)."""
        why_not = config.impl_spec.why_not(config.device, config.torch_dtype)
        if why_not:
            return [self.row(config, harness, mode, harness, None, "", status="skipped", message=why_not)]
        verdict = self.gate(config)
        if not verdict.ok:
            return [self.row(config, harness, mode, harness, None, "", status=verdict.status,
                             message=f"not measured, rejected by the correctness gate: {verdict.message}")]
        emulated = config.impl_spec.emulated(config.device) if timed else None
        if emulated:
            return [self.row(config, harness, mode, harness, None, "ms", "median", status="skipped",
                             message=emulated)]
        return None

    def failure(self, config: Config, harness: str, mode: str, err: BaseException) -> list[dict[str, Any]]:
        """The row of a configuration that failed (OOM, a kernel error); its module is dropped."""
        self._modules.pop(config.key("", ""), None)
        if config.device.startswith("cuda"):
            try:
                torch.cuda.empty_cache()
            except Exception:  # noqa: BLE001 - a dead CUDA context fails here too; the row already says why
                pass
        return [self.row(config, harness, mode, harness, None, "", status=status_of(err), message=describe(err))]

    def close(self) -> None:
        self._samples_file.close()
