"""Where the time goes, from the profile harness's rows (``--harness latency,profile``): the report's table (per
configuration and mode, the latency median beside the device's busy time in the profile, whose gap is launch gaps
and host work, kernels per call, and the longest kernels with their share of the busy time) and the run's summary
section (busy time, launches and the longest kernel's short name, one column per mode)."""

from __future__ import annotations

import re

import pandas as pd

from kanbench.report.summary import MEASURED, NOISY_MARK, NOISY_NOTE, Section, mode_order, row_order
from kanbench.report.tables import CONFIG

TEXT = ("torch.profiler over a few calls after warm-up (on a GPU each after the L2 flush, whose kernels are taken "
        "out): `busy ms` sums the device's kernels per call (on a CPU, the operators' self time), `launches` counts "
        "kernels per call (on a CPU, leaf operators). A diagnosis beside the latency median, not a latency figure: "
        "the profiler slows the host side. The traces are in `profiles/`.")
SHOWN = 3  # kernels named per row; the CSV holds the harness's longest eight
KERNEL = re.compile(r"^#\d+ (?P<name>.*): (?P<runs>\S+) per call, (?P<share>\S+) of the busy time$")


def _short(message: str) -> str:
    """A ``profile_kernel`` row's message as "name (share)"."""
    found = KERNEL.match(message)
    return f"{found['name']} ({found['share']})" if found else message


def _totals(group: pd.DataFrame) -> dict[str, float]:
    """One configuration's ``profile_busy`` and ``profile_launches``."""
    return {r.metric: float(r.value) for r in group.itertuples() if r.metric in ("profile_busy", "profile_launches")}


def short_name(name: str, width: int = 32) -> str:
    """A kernel's name without its return type, namespace path, template and parameters, cut to ``width``:
    ``void at::native::vectorized_elementwise_kernel<4, ...>(...)`` → ``vectorized_elementwise_kernel``."""
    bare = re.split(r"[<(]", name.removeprefix("void "), maxsplit=1)[0].strip().split("::")[-1] or name
    return bare if len(bare) <= width else bare[: width - 1] + "…"


def profile_sections(df: pd.DataFrame) -> list[Section]:
    """One table per device, dtype, form and width, as the latency summary's: rows variant/impl, a column per mode
    and token count; cell: busy ms per call, kernels (CPU: leaf operators) per call, the longest one and its share."""
    rows = df[(df.harness == "profile") & df.status.isin(MEASURED)]
    sections = []
    for (device, dtype, form, d_model), part in rows.groupby(["device", "dtype", "form", "d_model"], sort=True):
        columns = sorted({(m, int(t)) for m, t in zip(part["mode"], part.tokens, strict=True)}, key=mode_order)
        table: dict[tuple[str, str], dict[str, tuple]] = {}
        for (variant, impl, mode, tokens), group in part.groupby(["variant", "impl", "mode", "tokens"]):
            value = _totals(group)
            kernels = group[group.metric == "profile_kernel"].message
            top = KERNEL.match(kernels.iloc[0]) if len(kernels) else None
            busy = ("" if group.status.iloc[0] == "ok" else NOISY_MARK) + f"{value['profile_busy']:.3g} ms"
            table.setdefault((variant, impl), {})[f"{mode}\n{tokens} tok"] = (
                busy, f"{value['profile_launches']:g} launches",
                f"{short_name(top['name'])} {top['share']}" if top else "")
        frame = pd.DataFrame([{"variant": v, "impl": i, **{f"{m}\n{t} tok": table[v, i].get(f"{m}\n{t} tok", ("",))
                                                            for m, t in columns}}
                              for v, i in row_order(set(table))])
        notes = ["cell: busy ms per call (the device's kernels; on a CPU, the operators' self time) / launches "
                 "per call / the longest kernel and its share: a diagnosis, not a latency figure"]
        if (part.status == "noisy").any():
            notes.append(NOISY_NOTE)
        sections.append(Section(f"profile on {device}, {dtype}, {form} d_model={d_model}", frame,
                                ["variant", "impl"], notes))
    return sections


def profile_table(df: pd.DataFrame) -> pd.DataFrame:
    rows = df[(df.harness == "profile") & df.status.isin(MEASURED)]
    if rows.empty:
        return pd.DataFrame()
    latency = df[(df.harness == "latency") & (df.metric == "latency") & (df.stat == "median")
                 & df.status.isin(MEASURED)].set_index([*CONFIG, "mode"]).value
    out = []
    for key, group in rows.groupby([*CONFIG, "mode"], sort=True):
        value = _totals(group)
        kernels = group[group.metric == "profile_kernel"].message.tolist()[:SHOWN]
        out.append({**dict(zip([*CONFIG, "mode"], key, strict=True)),
                    "latency ms": f"{float(latency[key]):.4g}" if key in latency.index else "",
                    "busy ms": f"{value['profile_busy']:.4g}",
                    "launches": f"{value['profile_launches']:g}",
                    "longest": "; ".join(map(_short, kernels))})
    return pd.DataFrame(out)
