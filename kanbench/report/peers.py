"""kanbench's implementations beside the packages people install (``kanbench/peers/``): per variant that has a peer
impl in the run, kanbench's fastest impl and every peer, each with its forward and forward+backward latency,
its memory and the correctness gate's verdict.

"Fastest" is the lowest forward+backward median among the impls the gate accepted (the forward median where a run
has no backward). A peer the gate rejected has no number (none was taken): its row shows the verdict and the error
the gate measured, which is the finding. Memory is the peak over the baseline during a forward+backward (CUDA's
allocator, or on a CPU torch.profiler's allocation events); a run that predates the CPU peak shows the tensors saved
for the backward instead, and says so in the column's name.
"""

from __future__ import annotations

import pandas as pd

from kanbench import registry
from kanbench.report.summary import MEASURED

SHAPE = ["variant", "dtype", "tokens", "d_model"]


def package_of(variant: str, impl: str) -> str | None:
    try:
        return registry.get_variant(variant).impl(impl).package
    except registry.UnknownNameError:  # a results.csv from a kanbench that had other impls
        return None


def _latency(df: pd.DataFrame, mode: str) -> pd.Series:
    rows = df[(df.harness == "latency") & (df.metric == "latency") & (df.stat == "median") & (df["mode"] == mode)
              & df.status.isin(MEASURED)]
    return pd.to_numeric(rows.groupby([*SHAPE, "impl"]).value.first())


def _memory(df: pd.DataFrame) -> tuple[pd.Series, str]:
    for metric, label in (("peak_over_baseline", "peak MiB (fwd+bwd)"), ("saved_for_backward", "saved MiB")):
        rows = df[(df.metric == metric) & (df["mode"] == "fwd_bwd") & df.status.isin(MEASURED)]
        if len(rows):
            return pd.to_numeric(rows.groupby([*SHAPE, "impl"]).value.first()) / 2**20, label
    return pd.Series(dtype=float), "memory"


def _verdict(rows: pd.DataFrame) -> str:
    """The gate's verdict on one impl's rows with its largest measured error, or why the impl did not run."""
    gate = rows[rows.harness == "correctness"]
    if len(gate) and set(gate.status) <= {"ok", "mismatch"}:
        status = "mismatch" if (gate.status == "mismatch").any() else "ok"
        worst = pd.to_numeric(gate.value, errors="coerce").max()
        return f"{status} (error {worst:.2g})" if pd.notna(worst) else status
    failed = rows[~rows.status.isin(MEASURED)]
    if len(failed):
        first = failed.iloc[0]
        return f"{first.status}: {str(first.message).split(';')[0]}"  # the reason, not its elaboration
    return "not gated"


def peers_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (variant, shape): kanbench's fastest impl, then every peer of that variant in the run."""
    package = {(v, i): package_of(v, i) for v, i in df[["variant", "impl"]].drop_duplicates().itertuples(index=False)}
    peer_variants = {variant for (variant, _), name in package.items() if name}
    if not peer_variants:
        return pd.DataFrame()
    fwd, fwd_bwd = _latency(df, "fwd_no_grad"), _latency(df, "fwd_bwd")
    memory, memory_label = _memory(df)
    rows = []
    for shape, here in df[df.variant.isin(peer_variants)].groupby(SHAPE, sort=True):
        variant, dtype, tokens, d_model = shape
        impls = list(here.impl.unique())
        own = [i for i in impls if not package[variant, i]]
        speed = fwd_bwd if any((*shape, i) in fwd_bwd.index for i in own) else fwd
        fastest = min((i for i in own if (*shape, i) in speed.index), key=lambda i: speed[(*shape, i)], default=None)
        peers = sorted((i for i in impls if package[variant, i]), key=lambda i: speed.get((*shape, i), float("inf")))
        for impl in ([fastest] if fastest else []) + peers:
            key, mine = (*shape, impl), here[here.impl == impl]
            mark = " (noisy)" if (mine.status == "noisy").any() else ""

            def cell(series: pd.Series, digits: int = 4, key: tuple = key, mark: str = mark) -> str:
                return f"{series[key]:.{digits}g}{mark}" if key in series.index else ""

            ratio = (f"{speed[key] / speed[(*shape, fastest)]:.2f}×" if fastest and key in speed.index else "")
            rows.append({"variant": variant, "dtype": dtype, "tokens": tokens, "d_model": d_model, "impl": impl,
                         "package": package[variant, impl] or "kanbench (fastest)",
                         "fwd ms": cell(fwd), "fwd+bwd ms": cell(fwd_bwd), "time ÷ kanbench's": ratio,
                         memory_label: cell(memory, 3), "gate": _verdict(mine)})
    return pd.DataFrame(rows)
