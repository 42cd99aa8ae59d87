"""The report's "Where the time goes" table, from the profile harness's rows (``--harness latency,profile``): per
configuration and mode, the latency median beside the device's busy time in the profile (their gap is launch gaps
and host work), kernels per call, and the longest kernels with their share of the busy time."""

from __future__ import annotations

import re

import pandas as pd

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


def profile_table(df: pd.DataFrame) -> pd.DataFrame:
    rows = df[(df.harness == "profile") & df.status.isin(["ok", "noisy"])]
    if rows.empty:
        return pd.DataFrame()
    latency = df[(df.harness == "latency") & (df.metric == "latency") & (df.stat == "median")
                 & df.status.isin(["ok", "noisy"])].set_index([*CONFIG, "mode"]).value
    out = []
    for key, group in rows.groupby([*CONFIG, "mode"], sort=True):
        value = {m: g.value.astype(float).tolist() for m, g in group.groupby("metric")}
        kernels = group[group.metric == "profile_kernel"].message.tolist()[:SHOWN]
        out.append({**dict(zip([*CONFIG, "mode"], key, strict=True)),
                    "latency ms": f"{float(latency[key]):.4g}" if key in latency.index else "",
                    "busy ms": f"{value['profile_busy'][0]:.4g}",
                    "launches": f"{value['profile_launches'][0]:g}",
                    "longest": "; ".join(map(_short, kernels))})
    return pd.DataFrame(out)
