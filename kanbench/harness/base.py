"""Harnesses are plugins: each registers itself beside its code, as variants do, and the runner is only the loop
(plan → units → rows → writer).

A harness turns a plan into units of work (``units``), may batch units that must be measured together
(``batches``: latency times the configurations a table compares in interleaved rounds), turns a batch into CSV rows
(``rows``, one list per unit, each written in one go) and may add rows once every unit is done (``finish``: the
accuracy harness's mean and std over seeds). Adding a metric is one new module in this package (or in your own
code) with a class under :func:`register_harness`: the registry imports every module of the package when first
asked, and ``kanbench run --harness NAME`` and the presets then know it.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Any, ClassVar

from kanbench.harness.results import Config
from kanbench.names import UnknownNameError, unknown_name_message

if TYPE_CHECKING:  # the context and the plan import harness modules' neighbours; only types are needed here
    from kanbench.harness.context import RunContext
    from kanbench.harness.plan import Plan

Unit = tuple[Config, str, str]  # (configuration, harness, mode or task)
Rows = list[dict[str, Any]]

# The order a run takes kanbench's own harnesses in; a harness in any other module follows them.
BUILTIN = ("kanbench.harness.latency", "kanbench.harness.profile", "kanbench.harness.flops",
           "kanbench.harness.memory", "kanbench.harness.accuracy")


class Harness:
    """Base of every harness. ``measures_configurations``: it measures the plan's (variant, impl, shape)
    configurations in their modes and so passes through the correctness gate (accuracy trains models instead)."""

    name: ClassVar[str]
    measures_configurations: ClassVar[bool] = True
    # run only when named in --harness, never as part of a preset's "all" or "measurements" (the profile: a
    # diagnosis that would slow every run)
    on_request: ClassVar[bool] = False

    def units(self, plan: Plan) -> list[Unit]:
        """Every configuration of the plan in each of its modes."""
        return [(config, self.name, mode) for config, modes in plan.items for mode in modes]

    def units_given(self, plan: Plan, recorded: Rows) -> list[Unit]:
        """The units that can be planned now, given the rows already ``recorded``: all of :meth:`units` unless a
        harness's later units depend on earlier results (accuracy's final seeds on its search). The runner asks
        again after each round until nothing new appears."""
        return self.units(plan)

    def batches(self, units: list[Unit]) -> list[list[Unit]]:
        """Units measured together; by default each alone."""
        return [[unit] for unit in units]

    def times(self, unit: Unit) -> bool:
        """Whether the unit's rows hold clock readings, so that it must have the machine to itself. A unit that
        times nothing gives the same rows beside other work: the local runner spreads such units over the cores
        (:mod:`kanbench.executors.pool`) before it measures the timed ones."""
        return True

    def times_nothing(self, batch: list[Unit]) -> bool:
        """No unit of ``batch`` reads a clock (:meth:`times`): it may share the machine."""
        return not any(self.times(unit) for unit in batch)

    def rows(self, ctx: RunContext, batch: list[Unit]) -> list[Rows]:
        raise NotImplementedError

    def finish(self, ctx: RunContext) -> None:
        """Rows that need every unit done (none by default)."""


class PerConfiguration(Harness):
    """A harness that measures one configuration per unit: through the gate's door first (a refused or rejected
    configuration gets the refusal's row), then :meth:`measure`; a failure becomes a row with its status.
    ``timed``: its figures are times, so an impl that runs only in an emulator here (Triton's interpreter) is
    skipped, as the latency harness skips it."""

    timed: ClassVar[bool] = False

    def rows(self, ctx: RunContext, batch: list[Unit]) -> list[Rows]:
        config, _, mode = batch[0]
        refused = ctx.refusal(config, self.name, mode, timed=self.timed)
        if refused:
            return [refused]
        try:
            return [self.measure(ctx, config, mode)]
        except Exception as err:  # noqa: BLE001 - any failure of one configuration becomes a row, the sweep goes on
            return [ctx.failure(config, self.name, mode, err)]

    def measure(self, ctx: RunContext, config: Config, mode: str) -> Rows:
        raise NotImplementedError


_HARNESSES: dict[str, Harness] = {}
_loaded = {"builtin": False}


def register_harness(cls: type[Harness]) -> type[Harness]:
    """Class decorator: register a harness under its ``name``."""
    if cls.name in _HARNESSES:
        raise ValueError(f"harness '{cls.name}' is already registered")
    _HARNESSES[cls.name] = cls()
    return cls


def _load() -> None:
    """Import every module of this package once (those that define harnesses register them)."""
    if not _loaded["builtin"]:
        _loaded["builtin"] = True
        package = __name__.rsplit(".", 1)[0]
        for module in sorted(m.name for m in pkgutil.iter_modules(importlib.import_module(package).__path__)):
            importlib.import_module(f"{package}.{module}")


def harness_names(on_request: bool = True) -> tuple[str, ...]:
    """Every registered harness: kanbench's own in BUILTIN's order (whatever imported them first), then the
    others in the order they registered. ``on_request=False`` leaves out those run only when named."""
    _load()
    rank = {module: i for i, module in enumerate(BUILTIN)}
    names = [n for n in _HARNESSES if on_request or not _HARNESSES[n].on_request]
    return tuple(sorted(names, key=lambda n: (rank.get(type(_HARNESSES[n]).__module__, len(rank)), names.index(n))))


def measurement_names(on_request: bool = True) -> tuple[str, ...]:
    """The harnesses that measure configurations (all but accuracy among kanbench's own)."""
    return tuple(name for name in harness_names(on_request) if _HARNESSES[name].measures_configurations)


def get_harness(name: str) -> Harness:
    _load()
    if name not in _HARNESSES:
        raise UnknownNameError(unknown_name_message("harness", name, harness_names(), plural="harnesses"))
    return _HARNESSES[name]
