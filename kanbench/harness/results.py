"""The tidy CSV: one row per configuration × metric × statistic, appended and flushed as it is produced, so an
interrupted run leaves a valid file and ``--resume`` can skip what is done. A last line cut by a crash or a full
disk is repaired (dropped, and said so) before a resumed run appends anything."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kanbench import registry
from kanbench.harness.env import DTYPES

COLUMNS = [
    "run_id", "variant", "impl", "form", "harness", "mode", "metric", "value", "unit", "stat", "device", "dtype",
    "tokens", "d_model", "d_hidden", "shape", "params", "hparams", "seed", "status", "message", "session",
    "node",  # the machine that measured the row (its environment: env.json's "nodes"); added last, see upgrade
]
# noisy: measured, but the machine was busy during the measurement even after re-measuring (see contention.py)
STATUSES = ("ok", "noisy", "oom", "error", "mismatch", "skipped")
MEASURED = frozenset({"ok", "noisy"})  # the statuses whose rows carry a number


@dataclass(frozen=True)
class Config:
    """One measured configuration (a harness then measures it in one or more modes)."""

    variant: str
    impl: str
    form: str
    device: str
    dtype: str
    tokens: int
    d_model: int
    d_hidden: int
    hparams: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    @property
    def shape(self) -> str:
        return f"{self.tokens}x{self.d_model}"

    def __getstate__(self) -> dict[str, Any]:
        """The fields alone: the registry lookups cached below hold constructors that need not pickle, and a worker
        process resolves them again from its own registry."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    # -- resolved once: downstream code never looks a name up again ---------------------------------------------
    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @cached_property
    def spec(self) -> registry.VariantSpec:
        return registry.get_variant(self.variant)

    @cached_property
    def impl_spec(self) -> registry.Impl:
        return self.spec.impl(self.impl)

    @cached_property
    def full_hparams(self) -> dict[str, Any]:
        """The variant's defaults updated with this configuration's, the shapes checked for the form (a
        ValueError names the violated constraint)."""
        hp = self.spec.hparams(self.hparams)
        if self.form == "block":
            self.spec.validate_block(self.d_model, self.d_hidden, hp)
        else:
            self.spec.validate(self.d_model, self.d_hidden if self.form == "layer" else self.d_model, **hp)
        return hp

    def validate(self) -> None:
        """Fail now, with the constraint's message, on an impossible configuration."""
        registry.check_dims(self.variant, d_model=self.d_model, d_hidden=self.d_hidden, tokens=self.tokens)
        self.full_hparams  # noqa: B018 - computing it validates

    def cost(self) -> registry.Cost:
        """The form's analytic parameters and per-token FLOPs (:mod:`kanbench.costs`)."""
        if self.form == "block":
            return self.spec.block_cost(self.d_model, self.d_hidden, **self.full_hparams)
        if self.form == "layer":
            return self.spec.layer_cost(self.d_model, self.d_hidden, **self.full_hparams)
        return self.spec.op_cost(self.d_model, **self.full_hparams)

    def build(self, impl: str | None = None) -> nn.Module:
        """The module of ``impl`` (default: this configuration's) in its dtype on its device, seeded by the seed."""
        chosen = self.impl_spec if impl is None else self.spec.impl(impl)
        constructor = getattr(chosen, self.form, None)
        if constructor is None:
            raise ValueError(f"impl '{chosen.name}' of '{self.variant}' has no {self.form} form")
        torch.manual_seed(self.seed)
        args = (self.d_model,) if self.form == "op" else (self.d_model, self.d_hidden)
        return constructor(*args, **self.full_hparams).to(device=self.device, dtype=self.torch_dtype)

    def hparams_json(self) -> str:
        return json.dumps(self.hparams, sort_keys=True)

    def key(self, harness: str, mode: str) -> tuple:
        """Identity of one unit of work, for --resume."""
        return unit_key({**asdict(self), "hparams": self.hparams_json(), "harness": harness, "mode": mode})


# The CSV columns that identify one unit of work: a configuration under one harness and mode.
KEY_COLUMNS = ("variant", "impl", "form", "harness", "mode", "device", "dtype", "tokens", "d_model", "d_hidden",
               "hparams", "seed")


def unit_key(fields: dict[str, Any]) -> tuple:
    """The unit's identity from a configuration's fields or a CSV row (values compared as their CSV text)."""
    return tuple(str(fields[c]) for c in KEY_COLUMNS)


def row(config: Config, run_id: str, harness: str, mode: str, metric: str, value: float | None, unit: str,
        stat: str = "value", params: int | None = None, status: str = "ok", message: str = "",
        session: int = 0, node: str = "") -> dict[str, Any]:
    """One CSV row; ``session`` is the index of the env.json session (a resumed run adds one) that measured it,
    ``node`` the machine (a key of env.json's ``nodes``)."""
    assert status in STATUSES, status
    fields = asdict(config)
    fields.pop("hparams")
    return {
        **fields, "run_id": run_id, "harness": harness, "mode": mode, "metric": metric,
        "value": "" if value is None else value, "unit": unit, "stat": stat, "shape": config.shape,
        "params": "" if params is None else params, "hparams": config.hparams_json(), "status": status,
        "message": message.replace("\n", " ")[:500], "session": session, "node": node,
    }


def upgrade_columns(path: Path) -> str | None:
    """A results.csv of an earlier kanbench whose columns are this version's minus some added since (they are only
    ever added at the end) gets them, empty, so that --resume can add to it. Returns what was done, or None."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open(newline="") as f:
        columns = next(csv.reader([f.readline().rstrip("\r\n")]))
    if columns == COLUMNS or columns != COLUMNS[: len(columns)]:
        return None  # this version's, or another schema (repair_partial_tail refuses it)
    rows = recorded_rows(path)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({**r, **{c: "" for c in COLUMNS[len(columns):]}} for r in rows)
    return f"{path.name}: added the column(s) {', '.join(COLUMNS[len(columns):])} of this kanbench version"


def repair_partial_tail(path: Path) -> str | None:
    """Drop a last line that a crash or a full disk cut short (no final newline, or fewer fields than the header),
    keeping every complete row. Returns what was dropped, or None. A header that is not this version's is an error:
    rows of two schemas must not share a file."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    data = path.read_bytes()
    header = data.split(b"\n", 1)[0].decode(errors="replace").rstrip("\r")
    columns = next(csv.reader([header]))
    expected = COLUMNS if path.name == "results.csv" else None
    if expected is not None and columns != expected[: len(columns)]:  # an older prefix is upgraded afterwards
        raise ValueError(f"{path} has the columns of another kanbench version ({len(columns)} columns, not "
                         f"{len(expected)}); --resume cannot add to it: start a new run with a new --out.")
    keep = data if data.endswith(b"\n") else data[: data.rfind(b"\n") + 1]
    lines = keep.decode(errors="replace").splitlines(keepends=True)
    if len(lines) > 1 and len(next(csv.reader([lines[-1]]))) != len(columns):  # cut inside a row, then a newline
        keep = "".join(lines[:-1]).encode()
    if keep == data:
        return None
    dropped = data[len(keep):].decode(errors="replace")
    path.write_bytes(keep)
    return f"{path.name}: dropped an incomplete last line ({len(dropped)} characters: {dropped[:60]!r}...)"


class ResultWriter:
    """Appends rows to ``results.csv`` and flushes after every unit of work."""

    def __init__(self, path: Path) -> None:
        self.path = path
        new = not path.exists() or path.stat().st_size == 0
        self._file = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS)
        if new:
            self._writer.writeheader()
            self._file.flush()

    def write(self, rows: list[dict[str, Any]]) -> None:
        """All rows of one unit of work in a single write, so an interrupt cannot leave half a unit behind."""
        buffer = io.StringIO()
        csv.DictWriter(buffer, fieldnames=COLUMNS).writerows(rows)
        self._file.write(buffer.getvalue())
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def recorded_rows(path: Path) -> list[dict[str, str]]:
    """Every row of a results.csv (none if it does not exist)."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def done_keys(rows: list[dict[str, str]]) -> set[tuple]:
    """Units of work already recorded (any status), for --resume."""
    return {unit_key(r) for r in rows}
