"""Training protocols of the accuracy harness: which settings (learning rate, input preparation) a variant is trained
with, and how the tuned protocol picks one on validation.

- ``tuned`` (the default): for every variant the same search budget, on seed 0 — the learning rates
  :data:`LEARNING_RATES` × the variant's declared input preparations (``VariantSpec.preparations``, the authors'
  own first; two for every variant) on the tasks whose inputs the network sees directly, the learning rates alone
  on the transformer tasks (which embed their inputs themselves). The setting with the best validation score wins
  (the earliest candidate on a tie); then every seed trains with it. The test split is scored only in those final
  runs: the search never looks at it.
- ``uniform``: one recipe for all, as an ablation — the task's shared learning rate and standardized inputs.

The chosen learning rate and preparation are part of each row's ``hparams`` (``lr``, ``prep``, and any layer
hyperparameter the preparation brings, e.g. a B-spline grid range).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kanbench import registry
from kanbench.harness.training import select_better
from kanbench.preparation import STANDARDIZE, Preparation

if TYPE_CHECKING:
    from kanbench.harness.accuracy import Task

PROTOCOLS = ("tuned", "uniform")
LEARNING_RATES = (1e-3, 3e-3, 1e-2)
TRAINING_KEYS = ("lr", "prep")  # in a row's hparams but not the layer's
SEARCH_PREFIX = "search:"  # the mode of a search run: "search:<task>"


@dataclass(frozen=True)
class Setting:
    """One way to train: a learning rate and, for tasks that prepare inputs, a preparation."""

    lr: float
    prep: Preparation | None

    def hparams(self, base: dict[str, Any]) -> dict[str, Any]:
        """The row's hparams: the layer's (``base``, plus what the preparation brings) and the training keys."""
        if self.prep is None:
            return {**base, "lr": self.lr}
        return {**base, **self.prep.layer_hparams, "lr": self.lr, "prep": self.prep.name}


def candidates(task: Task, variant: str, protocol: str) -> list[Setting]:
    """The settings a variant is trained with on ``task``: one under ``uniform``, the search space under ``tuned``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol '{protocol}'; protocols: {', '.join(PROTOCOLS)}.")
    if protocol == "uniform":
        return [Setting(task.lr, STANDARDIZE if task.prepares_inputs else None)]
    preps: Iterable[Preparation | None] = (registry.get_variant(variant).preparations if task.prepares_inputs
                                          else (None,))
    return [Setting(lr, prep) for prep in preps for lr in LEARNING_RATES]


def layer_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters the layers take: a row's hparams without the training keys."""
    return {k: v for k, v in hparams.items() if k not in TRAINING_KEYS}


def preparation_of(task: Task, variant: str, hparams: dict[str, Any]) -> Preparation | None:
    """The preparation named by ``hparams['prep']`` among the variant's (or the uniform one)."""
    name = hparams.get("prep")
    if name is None:
        return None
    for prep in (*registry.get_variant(variant).preparations, STANDARDIZE):
        if prep.name == name and all(hparams.get(k) == _jsonable(v) for k, v in prep.layer_hparams.items()):
            return prep
    raise ValueError(f"'{variant}' declares no input preparation '{name}' with {hparams}")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def hparams_key(hparams: dict[str, Any]) -> str:
    """A row's hparams as the text its CSV column holds (key order fixed)."""
    return json.dumps(_jsonable(hparams), sort_keys=True)


def candidate_keys(task: Task, variant: str) -> list[str]:
    """The tuned search's candidates for ``variant`` on ``task``, in candidate order, as their rows' hparams."""
    base = dict(task.hparams_by_variant.get(variant, {}))
    return [hparams_key(s.hparams(base)) for s in candidates(task, variant, "tuned")]


def choose(task: Task, variant: str, hidden: int, recorded: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The hparams of the search candidate with the best validation score, once every candidate's search run is on
    file (None before). Candidates that failed (NaN loss) are passed over; if all failed, the first is kept, and its
    final runs record their own failure."""
    metric = task.val_metric
    scores: dict[str, float | None] = {}
    for r in recorded:
        if (r["harness"] == "accuracy" and r["mode"] == SEARCH_PREFIX + task.name and r["variant"] == variant
                and str(r["d_hidden"]) == str(hidden) and r["metric"] == metric):
            scores[r["hparams"]] = float(r["value"]) if r["status"] == "ok" else None
    keys = candidate_keys(task, variant)
    if any(k not in scores for k in keys):
        return None
    best_value, best_key = None, keys[0]
    for key in keys:  # candidate order: the earliest wins a tie (select_better is strict)
        value = scores[key]
        if value is not None and select_better(task, value, best_value):
            best_value, best_key = value, key
    return json.loads(best_key)
