"""``kanbench report RUN_DIR``: the run's results.csv and env.json as ``report.md`` and a self-contained
``report.html`` holding the same blocks (:mod:`.document`): the summary (:mod:`.summary`, also the terminal's),
the detailed latency, memory, FLOP and accuracy tables (:mod:`.tables`), the plots, and what did not run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from kanbench.harness.env import emulated_bf16_note
from kanbench.kernels.launch import cuda_core_dots_note
from kanbench.registry import REFERENCE, baseline_variant
from kanbench.report import load_run, peers, profiles, protocol, summary, targets
from kanbench.report.document import Block, Bullets, Heading, Image, Table, Text, to_html, to_markdown
from kanbench.report.intervals import load_samples
from kanbench.report.tables import CONFIG, accuracy_table, compile_table, latency_table, metric_table

LATENCY_TEXT = (
    "Median of every sample (L2 flushed before each call on CUDA), p20–p80 spread, CUDA-graph replay where "
    "measured, ratio to the larger of the bandwidth and compute floors, and speed-ups (>1 = faster) over the "
    "`{baseline}` baseline and over the variant's `{reference}` impl in the same dtype, shape and mode, with the 95 % "
    "bootstrap interval of the ratio of medians. `noisy`: measured while other processes took the CPU, after "
    "re-measuring (the figure is shown, not to be published as clean).")

TARGETS_TEXT = (
    "kanbench's targets for its own impls, judged on this run's rows: each impl against its floor or baseline "
    "measured beside it, the eager median and (where graphs were replayed) the CUDA-graph median; `noisy` figures "
    "are not judged. The targets and their shapes: `kanbench/report/targets.py`.")


def _clock(frequency: dict | None) -> str:
    """The CPU clock's settings in a few words; nothing where the run did not record them (a VM, an older run)."""
    if not frequency:
        return ""
    turbo = {True: ", turbo on", False: ", turbo off"}.get(frequency.get("turbo"), "")
    limits = f" {frequency['min_mhz']}–{frequency['max_mhz']} MHz" if frequency.get("max_mhz") else ""
    return f" (governor {frequency['governor']}{limits}{turbo})"


def environment_lines(env: dict) -> list[str]:
    device = env.get("gpu") or env.get("cpu", "?")
    if env.get("gpu_arch"):
        device = f"{device}, {env['gpu_arch']}"
    return [f"device: {device} ({env.get('device', '?')}), driver {env.get('driver', '-')}, CUDA "
            f"{env.get('cuda', '-')}; CPU {env.get('cpu', '?')}{_clock(env.get('cpu_frequency'))}, "
            f"{env.get('threads', '?')} threads",
            f"python {env.get('python')}, torch {env.get('torch')}, triton {env.get('triton')}; "
            f"commit {env.get('git_commit')}",
            f"command: `{env.get('command')}`",
            "measured ceilings: " + json.dumps({k: f"{v:.3g}" for k, v in env.get("ceilings", {}).items()})] + (
        ["peer packages: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in env["peer_packages"].items())]
        if env.get("peer_packages") else []) + [note for note in (cuda_core_dots_note(env.get("gpu_arch")),
                                                                 emulated_bf16_note(env)) if note]


def blocks(df: pd.DataFrame, env: dict, run_dir: Path, plots: list[Path]) -> list[Block]:
    out: list[Block] = [Heading(f"kanbench run {env.get('run_id', run_dir.name)}", 1),
                        Bullets(environment_lines(env))]
    if (run_dir / "ERRATA.md").exists():  # a published set corrected after the fact says so before any number
        out.append(Text("**Errata**: this set has known problems, listed in `ERRATA.md` beside this report; read "
                        "them before quoting a figure."))
    out.append(Heading("Summary"))
    out += [Table(section) for section in summary.accuracy_sections(df) + summary.latency_sections(df)
            + profiles.profile_sections(df)]
    judged = targets.targets_table(df, env)
    if len(judged):
        out += [Heading("Performance targets"), Text(TARGETS_TEXT), Table(judged)]
    versus = peers.peers_table(df)
    if len(versus):
        out += [Heading("kanbench's implementations vs the packages you use today"),
                Text(peers.__doc__.split("\n\n", 1)[1].replace("\n", " ").strip()), Table(versus)]
    if (df.harness == "latency").any():
        out += [Heading("Latency"), Text(LATENCY_TEXT.format(baseline=baseline_variant(), reference=REFERENCE)),
                Table(latency_table(df, load_samples(run_dir)))]
    where = profiles.profile_table(df)
    if len(where):
        out += [Heading("Where the time goes"), Text(profiles.TEXT), Table(where)]
    if ((df.harness == "latency") & (df.metric == "compile_time")).any():
        compiles, startup = compile_table(df)
        out += [Heading("Compile time"),
                Text(f"Wall time of the first call of each shape, dtype and grad mode in the process, compilation "
                     f"included (with gradients, the first backward too); a warm FX-graph cache shortens it. "
                     f"{startup}".strip()), Table(compiles)]
    if (df.harness == "memory").any():
        out += [Heading("Memory"), Table(metric_table(df, "memory", ["peak_over_baseline", "saved_for_backward",
                                                                   "param_bytes", "impl_buffer_bytes",
                                                                   "resident_bytes"], 2**20, "MiB"))]
    if (df.harness == "flops").any():
        out += [Heading("FLOPs"), Text("1 multiply-add = 2 FLOPs except fvcore's column (1 MAC = 1 flop); "
                                       "forward+backward in the `fwd_bwd` rows."),
                Table(metric_table(df, "flops", ["flops_matmul", "flops_matmul_elementwise", "flops_analytic",
                                                 "flops_fvcore", "flops_effective"], 1e9, "G"))]
    fractions = ["active_fraction", "active_union_fraction"]
    if ((df.harness == "flops") & df.metric.isin(fractions)).any():  # the accuracy harness records them too
        out += [Heading("Spark active fractions"),
                Text("Share of (row, neuron) pairs the statistical threshold keeps (target k/d_ff), and share of "
                     "neurons active in at least one row of the batch: what a sparse decode path computes. "
                     "Measured by each impl on a held-out input of the row's shape."),
                Table(metric_table(df, "flops", fractions, 1, "fraction"))]
    if (df.harness == "accuracy").any():
        out += [Heading("Accuracy"), Text("Test metric of the checkpoint chosen on validation, mean ± std over "
                                          "seeds; `hidden` is the width matched to the MLP's parameters."),
                Table(accuracy_table(df))]
        share = protocol.converged_share(df)
        out += [Heading("Accuracy protocol", 3), Text(protocol.protocol_text(env) + (
            f" Over the whole table, {share[0]} of {share[1]} seeds converged." if share else "")),
                Table(protocol.protocol_table(df))]
    if plots:
        out += [Heading("Plots")] + [Image(p) for p in plots if p.suffix == ".png"]
    failed = df[~df.status.isin(summary.MEASURED)]
    if len(failed):
        out += [Heading("Not run"), Bullets(summary.not_run_lines(df, limit=len(df))),
                Table(failed[[*CONFIG, "harness", "mode", "metric", "status", "message"]].drop_duplicates())]
    return out


def write_report(run_dir: Path, plots: list[Path] | None = None) -> Path:
    """report.md and report.html in ``run_dir``; returns report.md's path."""
    df, env = load_run(run_dir)
    document = blocks(df, env, run_dir, plots or [])
    out = run_dir / "report.md"
    out.write_text(to_markdown(document))
    title = f"kanbench run {env.get('run_id', run_dir.name)}"
    (run_dir / "report.html").write_text(to_html(document, title, run_dir / "plots", env), encoding="utf-8")
    return out
