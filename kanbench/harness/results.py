"""The tidy CSV: one row per configuration × metric × statistic, appended and flushed as it is produced, so an
interrupted run leaves a valid file and ``--resume`` can skip what is done."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

COLUMNS = [
    "run_id", "variant", "impl", "form", "harness", "mode", "metric", "value", "unit", "stat", "device", "dtype",
    "tokens", "d_model", "d_hidden", "shape", "params", "hparams", "seed", "status", "message",
]
STATUSES = ("ok", "oom", "error", "mismatch", "skipped")


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
        stat: str = "value", params: int | None = None, status: str = "ok", message: str = "") -> dict[str, Any]:
    assert status in STATUSES, status
    fields = asdict(config)
    fields.pop("hparams")
    return {
        **fields, "run_id": run_id, "harness": harness, "mode": mode, "metric": metric,
        "value": "" if value is None else value, "unit": unit, "stat": stat, "shape": config.shape,
        "params": "" if params is None else params, "hparams": config.hparams_json(), "status": status,
        "message": message.replace("\n", " ")[:500],
    }


class ResultWriter:
    """Appends rows to ``results.csv`` and flushes after every configuration."""

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


def done_keys(path: Path) -> set[tuple]:
    """Units of work already recorded in a results.csv (any status), for --resume."""
    if not path.exists():
        return set()
    with path.open(newline="") as f:
        return {unit_key(r) for r in csv.DictReader(f)}
