"""How every figure of a report is framed and saved: one colour per variant across every plot and run, titles that
name the device, dtype and shape, panels that wrap at four a row, readable axes (:mod:`kanbench.report.axes`),
and a footer naming the software behind the figure; PNG and SVG."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import FixedLocator  # noqa: E402

from kanbench import registry  # noqa: E402
from kanbench.report.axes import in_units_of, readable_log_ticks  # noqa: E402

WRAP = 4  # facets a row


@dataclass
class Figures:
    """Where and how every plot of a run is drawn: its folder, one colour per variant, the device's name."""

    out: Path
    colours: dict[str, tuple]
    device: str
    footer: str = ""  # the versions and commit behind the figure, printed under it

    def title(self, what: str, df: pd.DataFrame, shape: str | None = None) -> str:
        """``what`` over ``device, dtypes, shape``: every figure names the machine, precision and size it shows."""
        dtypes = ", ".join(sorted(set(df.dtype))) if "dtype" in df else ""
        if shape is None and {"tokens", "d_model"} <= set(df.columns):
            tokens = "/".join(map(str, sorted(set(df.tokens.astype(int)))))
            widths = "/".join(map(str, sorted(set(df.d_model.astype(int)))))
            shape = f"{tokens} tokens × d_model {widths}"
        return f"{what}\n{self.device}, {dtypes}" + (f", {shape}" if shape else "")


def palette(variants: list[str]) -> dict[str, tuple]:
    """The same colour for a variant in every plot and every run (keyed on the registry's order)."""
    names = registry.list_variants()
    names += sorted(set(variants) - set(names))
    colours = sns.color_palette("tab10", n_colors=max(10, len(names)))
    return {name: colours[i % len(colours)] for i, name in enumerate(names)}


def axes_grid(panels: int, width: float, height: float) -> tuple[plt.Figure, list[plt.Axes]]:
    """``panels`` axes wrapped at WRAP a row; the unused cells of the last row are removed."""
    cols = min(WRAP, panels)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[panels:]:
        ax.remove()
    return fig, flat[:panels]


def facets_a_row(data: pd.DataFrame) -> int:
    """Facets a row: WRAP, or fewer where there are fewer panels (seaborn sizes the figure for ``col_wrap``
    columns, so one panel would sit in a figure four wide)."""
    return min(WRAP, data.panel.nunique())


def save(fig: plt.Figure, figs: Figures, name: str, tight: bool = True) -> list[Path]:
    """PNG and SVG, signed with ``figs.footer`` under everything drawn (a figure quoted alone still names its
    versions). ``tight=False`` for seaborn figure-level grids, which place their own legend outside."""
    for ax in fig.axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "log" and not isinstance(axis.get_major_locator(), FixedLocator):  # a plot's own ticks stay
                readable_log_ticks(axis)
            elif scale == "linear" and (largest := max(map(abs, axis.get_view_interval()))) >= 1e4:
                axis.set_major_formatter(in_units_of(largest))
    if tight:
        fig.tight_layout()
    if figs.footer:
        drawn = fig.get_tightbbox(fig.canvas.get_renderer())  # inches; legends and labels outside the axes included
        width, height = fig.get_size_inches()  # in figure fractions, which savefig's tight crop moves along
        fig.text(drawn.x1 / width, (drawn.y0 - 0.08) / height, figs.footer, ha="right", va="top", fontsize=7,
                 color="0.35")
    paths = [figs.out / f"{name}.png", figs.out / f"{name}.svg"]
    for path in paths:
        png = path.suffix == ".png"
        with matplotlib.rc_context({"svg.hashsalt": "kanbench"}):  # SVG ids and no date: same data, same file
            fig.savefig(path, dpi=130 if png else None, bbox_inches="tight",
                        metadata=None if png else {"Date": None})
    plt.close(fig)
    return paths


def footer(env: dict) -> str:
    """``kanbench <commit> · torch · triton · CUDA and driver on a GPU · the run's date``, from env.json."""
    parts = [f"kanbench {str(env.get('git_commit') or '?')[:12]}", f"torch {env.get('torch', '?')}",
             f"triton {env.get('triton') or '-'}"]
    if env.get("cuda"):
        parts.append(f"CUDA {env['cuda']}, driver {env.get('driver') or '?'}")
    return " · ".join(parts + [str(env.get("time_utc", ""))[:10]]).rstrip(" ·")
