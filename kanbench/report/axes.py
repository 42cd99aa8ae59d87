"""Axes a reader can read values off: log axes labelled in plain numbers at "nice" values wherever they span
(decades alone leave many panels without a label), large counts on linear axes in one unit, measured sizes as the
ticks of a size axis."""

from __future__ import annotations

import math
from collections.abc import Iterable

import matplotlib.axis
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter

# "nice" mantissas for log-axis ticks, finest first: each axis takes the finest set whose labels do not crowd
NICE_MANTISSAS = ((1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8), (1, 1.5, 2, 3, 5, 7), (1, 2, 3, 5), (1, 2, 5), (1, 3), (1,))
MOST_LOG_TICKS = 6


def nice_log_ticks(low: float, high: float) -> list[float] | None:
    """Ticks for a log axis viewing [low, high], as values a reader reads off (0.2, 1.5, 5, 100): the finest set of
    :data:`NICE_MANTISSAS` in every decade that puts at least two ticks inside the view, none closer than 1/6 of
    its span. None where even the decades crowd (over six decades: matplotlib's decade locator thins them)."""
    span = math.log10(high / low)
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    for mantissas in NICE_MANTISSAS:
        inside = sorted(v for e in decades for m in mantissas if low <= (v := float(f"{m * 10.0**e:.12g}")) <= high)
        if len(inside) >= 2 and np.diff(np.log10(inside)).min() >= span / MOST_LOG_TICKS:
            return inside
    return None


def in_units_of(largest: float) -> FuncFormatter:
    """Tick labels of large counts in one unit per axis, chosen by its largest value: 95k 100k 105k (k from 10^4, M
    from 10^6, G from 10^9), not 95000100000105000 run together."""
    scale, suffix = next((u for u in ((1e9, "G"), (1e6, "M"), (1e3, "k")) if largest >= max(u[0], 1e4)), (1, ""))
    return FuncFormatter(lambda value, _: f"{value / scale:.4g}{suffix}" if value else "0")


def readable_log_ticks(axis: matplotlib.axis.Axis) -> None:
    """Label a log axis with :func:`nice_log_ticks` in plain numbers (decades alone would leave a panel of 1.8-5 ms
    without a single label); a view too narrow for two of them gets linear ticks (so narrow, it looks linear), one
    over more than six decades matplotlib's thinned decades."""
    low, high = sorted(axis.get_view_interval())
    if not 0 < low < high:
        return
    if (ticks := nice_log_ticks(low, high)) is not None:
        axis.set_major_locator(FixedLocator(ticks))
    elif math.log10(high / low) < 1:
        axis.set_major_locator(MaxNLocator(nbins=4))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def ticks_at(axes: Iterable[plt.Axes], values: Iterable[float], most: int = 8) -> None:
    """Label the x axes at the values measured (batch sizes 1, 2, 4, ..., 64) where there are at most ``most``."""
    values = sorted(set(values))
    if len(values) <= most:
        for ax in axes:
            ax.xaxis.set_major_locator(FixedLocator(values))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
