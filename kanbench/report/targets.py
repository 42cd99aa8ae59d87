"""kanbench's performance targets, judged on a run's own rows: met or missed, with the measured ratio.

Every comparison is inside one run (the impl, its floor or baseline measured side by side on one machine), on
kanbench's own impls (every impl but ``reference`` and the peer packages'), each judged alone. A ratio is computed
for the eager median and, where the run replayed CUDA graphs (``--cuda-graph``), for the graph median against the
baseline's graph median (the floors are the same for both). ``noisy`` figures are shown and marked, never judged.

| target | variant, form, mode | limit |
|---|---|---|
| rational op, forward | ``grkan`` op ``fwd_no_grad``, fp32 and bf16 | ≤ 1.2 × the bandwidth floor |
| rational op, forward+backward | ``grkan`` op ``fwd_bwd`` (coefficient gradients included) | ≤ 1.5 × the floor |
| GR-KAN block | ``grkan`` block ``fwd_bwd`` | ≤ 1.05 × the MLP block (``mlp``'s reference, same dtype) |
| B-spline KAN block | ``bspline_kan`` block ``fwd_bwd``, bf16, d_model 768, 8192 tokens | ≤ 2 × matmul floor, 1 GB |
| ReLU-KAN block | ``relu_kan``, the same | ≤ 2 × its matmul floor; ≤ 1 GB peak |
| AF-KAN block | ``af_kan``, the same | ≤ 2 × the MLP block in bf16; ≤ 1 GB peak |
| Spark decode | ``spark_ffn`` block ``decode``, bf16, 1 token | ≥ 2.0 × faster than the dense gated FFN (``glu``) |
| statistical top-k | ``spark_ffn`` op ``fwd_bwd``, ≥ 1024 rows | ≤ 1.2 × the bandwidth floor |
| the default run | ``kanbench run --variants all``, no flag that changes what it measures, 2-core CPU | ≤ 120 s |

"Peak" is the memory harness's peak over the baseline in one forward+backward (CUDA only; 1 GB = 10⁹ bytes). The
matmul floor is the variant's analytic FLOPs at the run's measured matmul rate in that dtype (``floor_compute``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, NamedTuple

import pandas as pd

from kanbench.registry import REFERENCE
from kanbench.report.peers import package_of
from kanbench.report.summary import MEASURED

TIMINGS = (("latency", "eager"), ("latency_cuda_graph", "graph"))
GB = 1e9
DEFAULT_RUN_SECONDS = 120.0


@dataclass(frozen=True)
class Target:
    """One target: the rows it judges and what they are held to. ``against`` is a floor metric
    (``floor_bandwidth``, ``floor_compute``) or a baseline variant (its ``reference`` at the same dtype, tokens and
    d_model). ``speedup``: the ratio is baseline ÷ impl and must reach ``limit``; otherwise impl ÷ against must not
    exceed it."""

    name: str
    variant: str
    form: str
    mode: str
    against: str
    limit: float
    dtypes: tuple[str, ...] = ("fp32", "bf16")
    tokens: tuple[int, ...] = ()  # exactly these (empty: any at or above min_tokens)
    min_tokens: int = 0
    d_model: tuple[int, ...] = ()
    speedup: bool = False
    peak_bytes: float | None = None
    device: str = "cuda"  # the targets are set for a GPU (an H100); a CPU row is not held to them

    @property
    def limit_text(self) -> str:
        what = f"≥ {self.limit:g}× faster than {self.against}" if self.speedup else \
            f"≤ {self.limit:g}× {self.against}"
        return what + (f"; peak ≤ {self.peak_bytes / GB:g} GB" if self.peak_bytes else "")

    def selects(self, row: Measured) -> bool:
        return (row.variant == self.variant and row.form == self.form and row.mode == self.mode
                and row.dtype in self.dtypes
                and (int(row.tokens) in self.tokens if self.tokens else int(row.tokens) >= self.min_tokens)
                and (not self.d_model or int(row.d_model) in self.d_model))


KAN_BLOCK = {"form": "block", "mode": "fwd_bwd", "dtypes": ("bf16",), "tokens": (8192,), "d_model": (768,),
             "peak_bytes": 1 * GB}
TARGETS = (
    Target("rational op, forward", "grkan", "op", "fwd_no_grad", "floor_bandwidth", 1.2),
    Target("rational op, forward+backward", "grkan", "op", "fwd_bwd", "floor_bandwidth", 1.5),
    Target("GR-KAN block, forward+backward", "grkan", "block", "fwd_bwd", "mlp", 1.05),
    Target("B-spline KAN block", "bspline_kan", against="floor_compute", limit=2.0, **KAN_BLOCK),
    Target("ReLU-KAN block", "relu_kan", against="floor_compute", limit=2.0, **KAN_BLOCK),
    Target("AF-KAN block", "af_kan", against="mlp", limit=2.0, **KAN_BLOCK),
    Target("Spark decode, batch 1", "spark_ffn", "block", "decode", "glu", 2.0, dtypes=("bf16",), tokens=(1,),
           speedup=True),
    Target("statistical top-k, forward+backward", "spark_ffn", "op", "fwd_bwd", "floor_bandwidth", 1.2,
           min_tokens=1024),
)

class Measured(NamedTuple):
    """One measured configuration and mode (the index of the run's latency rows)."""

    variant: str
    impl: str
    form: str
    dtype: str
    tokens: int
    d_model: int
    mode: str


SHAPE = list(Measured._fields)


def _values(df: pd.DataFrame, harness: str, metric: str, stat: str | None = None) -> pd.DataFrame:
    rows = df[(df.harness == harness) & (df.metric == metric) & df.status.isin(MEASURED)]
    if stat is not None:
        rows = rows[rows.stat == stat]
    rows = rows.assign(value=pd.to_numeric(rows.value, errors="coerce")).dropna(subset=["value"])
    return rows.groupby(SHAPE).agg(value=("value", "first"), noisy=("status", lambda s: (s == "noisy").any()))


def _against(target: Target, row: Measured, metric: str, floors: dict[str, pd.DataFrame],
             timings: dict[str, pd.DataFrame]) -> float | None:
    """The floor or the baseline's median this row is compared with (None where the run lacks it)."""
    if target.against.startswith("floor_"):
        key, table = tuple(row), floors[target.against]
    else:
        key = (target.against, REFERENCE, row.form, row.dtype, row.tokens, row.d_model, row.mode)
        table = timings[metric]
    return float(table.loc[key, "value"]) if key in table.index else None


def _verdict(ratio: float, target: Target, noisy: bool) -> str:
    if noisy:
        return "not judged (noisy)"
    return "met" if (ratio >= target.limit if target.speedup else ratio <= target.limit) else "missed"


def target_rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per (target, kanbench impl, dtype, shape) the run measured: the medians, the ratio per timing and
    the verdict (memory included where the target has a peak limit)."""
    if df.empty:
        return []
    df = df.assign(tokens=pd.to_numeric(df.tokens), d_model=pd.to_numeric(df.d_model))
    timings = {metric: _values(df, "latency", metric, "median") for metric, _ in TIMINGS}
    device = str(df.device.iloc[0]).split(":")[0]
    floors = {m: _values(df, "latency", m) for m in ("floor_bandwidth", "floor_compute")}
    peaks = _values(df, "memory", "peak_over_baseline")
    # kanbench's own impls, each (variant, impl) looked up in the registry once
    pairs = {key[:2] for key in timings["latency"].index}
    own = {pair: pair[1] != REFERENCE and not package_of(*pair) for pair in pairs}
    measured = [Measured(*key) for key in timings["latency"].index if own[key[:2]]]
    out = []
    for target in (t for t in TARGETS if t.device == device):
        for row in (r for r in measured if target.selects(r)):
            key = tuple(row)
            cells: dict[str, str] = {}
            verdicts = []
            for metric, label in TIMINGS:
                mine = timings[metric].loc[key] if key in timings[metric].index else None
                base = _against(target, row, metric, floors, timings)
                if mine is None or not base:
                    cells[f"{label} ms"] = cells[f"{label} ×"] = "-"
                    continue
                ratio = base / mine.value if target.speedup else mine.value / base
                verdict = _verdict(ratio, target, bool(mine.noisy))
                cells[f"{label} ms"] = f"{mine.value:.4g}"
                cells[f"{label} ×"] = f"{ratio:.3f}"
                verdicts.append(f"{label} {verdict}")
            if target.peak_bytes:
                peak = peaks.loc[(*key[:-1], "fwd_bwd")].value if (*key[:-1], "fwd_bwd") in peaks.index else None
                cells["peak GB"] = "-" if peak is None else f"{peak / GB:.3g}"
                if peak is not None:
                    verdicts.append("memory " + ("met" if peak <= target.peak_bytes else "missed"))
            out.append({"target": target.name, "limit": target.limit_text, "impl": row.impl, "dtype": row.dtype,
                        "tokens": str(row.tokens), "d_model": str(row.d_model), **cells,
                        "verdict": ", ".join(verdicts) or "no comparison in this run"})
    return out


# flags of ``kanbench run`` that leave the default's measurements as they are: where the results go, the console,
# the device (only a CPU run is judged) and the default's own variants and preset named (None: any value)
_SAME_PLAN_SWITCHES = {"--no-progress", "--no-report", "--resume"}
_SAME_PLAN_VALUES = {"--out": None, "--device": None, "--variants": "all", "--preset": "default"}


def measures_the_default(command: str) -> bool:
    """Whether ``command`` (env.json's) is ``kanbench run`` with no flag that changes what the default measures:
    a run of fewer variants, other shapes, threads or harnesses is not the default run, whatever its time."""
    words = shlex.split(command)
    if words[:2] != ["kanbench", "run"]:
        return False
    words = [part for word in words[2:] for part in (word.split("=", 1) if word.startswith("--") else [word])]
    i = 0
    while i < len(words):
        flag = words[i]
        if flag in _SAME_PLAN_SWITCHES:
            i += 1
            continue
        if flag not in _SAME_PLAN_VALUES or i + 1 >= len(words) or _SAME_PLAN_VALUES[flag] not in (None, words[i + 1]):
            return False
        i += 2
    return True


def default_run_row(env: dict) -> dict[str, Any] | None:
    """The default run's wall time against its target, for a one-session run of the default preset with no flag
    that changes its measurements (:func:`measures_the_default`), on a 2-core CPU (a resumed run's wall time is not
    one run's)."""
    if (env.get("preset") != "default" or env.get("device") != "cpu" or env.get("cpu_count") != 2
            or len(env.get("sessions", [])) != 1 or "wall_seconds" not in env
            or not measures_the_default(env.get("command", ""))):
        return None
    seconds = float(env["wall_seconds"])
    return {"target": "the default run", "limit": f"≤ {DEFAULT_RUN_SECONDS:g} s on a 2-core CPU",
            "impl": "all", "dtype": "fp32", "wall s": f"{seconds:.0f}",
            "verdict": "met" if seconds <= DEFAULT_RUN_SECONDS else "missed"}


def targets_table(df: pd.DataFrame, env: dict) -> pd.DataFrame:
    """Every target this run can judge (empty when it measures none of them)."""
    rows = target_rows(df)
    default = default_run_row(env)
    return pd.DataFrame(rows + ([default] if default else [])).fillna("")
