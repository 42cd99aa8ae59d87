"""``kanbench run``: its flags (checked in cli_flags.py before anything runs), the run folder and its env.json, the
sweep, the summary and the report."""

from __future__ import annotations

import argparse
import contextlib
import errno
import signal
import sys
import time
from pathlib import Path

import pandas as pd
from rich.console import Console

from kanbench.cli_flags import checked_plan, resolve_device
from kanbench.executors import EXECUTORS, get_executor
from kanbench.executors.pool import untimed_pool
from kanbench.harness import accuracy, contention, folder_lock, gpu_state, tuning
from kanbench.harness.base import harness_names
from kanbench.harness.context import node_name
from kanbench.harness.env import DTYPES, emulated_bf16_note, environment, measure_ceilings, write_env
from kanbench.harness.interrupts import stops_on_termination
from kanbench.harness.plan import Plan
from kanbench.harness.presets import PRESETS, get_preset
from kanbench.harness.runner import Runner
from kanbench.kernels.launch import cuda_core_dots_note
from kanbench.report import load_env

RESULTS_ROOT = Path("results") / "runs"
# a run's files cannot be written any more: disk full, quota, file too large, read-only or failing disk
WRITE_FAILURES = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}


def add_run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="measure variants (latency, FLOPs, memory) into a tidy CSV",
                       description="Measure registered variants. With no flags: every variant, every harness, the "
                                   "CPU-sized default preset, on the GPU if there is one.")
    p.add_argument("--variants", default=None, help="all | NAME,NAME | GLOB (default: the preset's variants)")
    p.add_argument("--harness", default=None, help=f"comma-separated subset of {','.join(harness_names())}")
    p.add_argument("--impl", default=None, help="comma-separated impls (default: every impl of each variant)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--dtype", default=None, help=f"comma-separated subset of {','.join(DTYPES)}")
    p.add_argument("--preset", default="default", help=f"one of {', '.join(PRESETS)}")
    p.add_argument("--tokens", default=None, help="comma-separated token counts of the fwd_no_grad and fwd_bwd "
                                                  "modes (overrides the preset's)")
    p.add_argument("--decode-tokens", default=None, help="comma-separated batch sizes of the decode mode "
                                                         "(overrides the preset's)")
    p.add_argument("--d-model", default=None, help="comma-separated model widths (overrides the preset's)")
    p.add_argument("--d-hidden", default=None, type=int, help="hidden width (default: the preset's, else 4·d_model)")
    p.add_argument("--out", default=None, help=f"output folder (default: {RESULTS_ROOT}/<run_id>)")
    p.add_argument("--resume", action="store_true", help="skip what --out (or the newest run) already holds")
    p.add_argument("--seeds", default=None, type=int,
                   help="seeds per configuration (default: 1 for latency/flops/memory, 3 for accuracy)")
    p.add_argument("--match", default=None, help="accuracy: match hidden widths by params | flops | none "
                                                 "(default: params)")
    p.add_argument("--tasks", default=None, help="accuracy tasks, comma-separated (default: the preset's)")
    p.add_argument("--protocol", default=None, choices=tuning.PROTOCOLS,
                   help="accuracy: tuned (learning rate and input preparation searched per variant on validation, "
                        "the same budget for each; the default) or uniform (one shared recipe, an ablation)")
    p.add_argument("--threads", default=None, type=int,
                   help="CPU threads for torch, 1 to the cores this process may use (default: all of them)")
    p.add_argument("--executor", default="local", choices=EXECUTORS,
                   help="where units are measured: this process (local) or tasks on a Ray cluster (ray; needs "
                        "the kanbench[ray] extra)")
    p.add_argument("--ray-address", default=None,
                   help="with --executor ray: the cluster's head, host:port (default: a local Ray for this run)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="add a CUDA-graph latency column (fwd_bwd: forward and backward graphs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")
    p.add_argument("--dry-run", action="store_true",
                   help="print what the run would measure and skip (and why), then stop: nothing measured or written")
    p.add_argument("--no-report", action="store_true", help="skip the plots and report.md at the end")
    p.set_defaults(func=cmd_run)


def writable_folder(path: Path, flag: str = "--out") -> Path:
    """Create ``path`` as a folder and check a file can be written in it; a ValueError in one line otherwise."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file, not a folder; give a folder for the run's results.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".kanbench-write-check"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"{flag} {path}: cannot write there ({err.strerror or err}); choose a writable "
                         "folder.") from None
    return path


def _out_dir(args: argparse.Namespace, run_id: str) -> Path:
    if args.out:
        return Path(args.out)
    if args.resume:
        runs = sorted(RESULTS_ROOT.glob("*/results.csv"), key=lambda p: p.stat().st_mtime)
        if runs:
            return runs[-1].parent
    return RESULTS_ROOT / run_id


def _previous_session(args: argparse.Namespace, out_dir: Path, preset: str, device: str) -> dict:
    """The env.json of the run --resume continues ({} for a new run); a ValueError where it was another preset's or
    device's: the folder's env.json and report describe the first session's."""
    previous = load_env(out_dir) if args.resume else {}
    for key, given, flag in (("preset", preset, "--preset"), ("device", device, "--device")):
        if previous.get(key, given) != given:
            raise ValueError(f"{out_dir} holds a run with {key} {previous[key]}, not {given}: resume it with "
                             f"{flag} {previous[key]}, or give this run another --out.")
    return previous


def _start_session(args: argparse.Namespace, plan: Plan, dtypes: list[str], device: str, run_id: str, out_dir: Path,
                   previous: dict, console: Console) -> tuple[dict, dict]:
    """Say what the run will do and warn of what would spoil its timings (a busy machine or GPU, a GPU where
    Triton's dots have no tensor cores), measure the ceilings, and write env.json with this session appended to
    the run's sessions. Returns the env and this session's record."""
    preset = plan.preset
    env = environment(device, sys.argv[1:] if args.command == "run" else None)
    env.update({"run_id": run_id, "preset": preset.name, "preset_description": preset.description,
                "threads": plan.threads})
    searches = 0
    if plan.accuracy_items:
        env["accuracy_protocol"] = plan.protocol
        searches = accuracy.search_runs(plan)
    console.print(f"kanbench run [bold]{run_id}[/]: preset {preset.name}, {len(plan.items)} configurations, "
                  f"{len(plan.accuracy_items)} training runs"
                  + (f" + {searches} search runs ({plan.protocol} protocol)" if searches else "") + ", "
                  f"harnesses {','.join(plan.harnesses)}, device {device} → {out_dir}")
    busy = contention.machine_load(0.5)
    if busy is not None and busy.contaminated:
        console.print(f"[yellow]warning: the machine is busy before the run ({busy.describe()}); timings taken "
                      "while it stays busy are measured again, then marked noisy. Publish only from an idle "
                      "machine.[/]")
    gpu_at_start = gpu_state.snapshot(device)  # None on a CPU
    if gpu_busy := gpu_state.busy_before_run(gpu_at_start):
        console.print(f"[yellow]warning: {gpu_busy} ({gpu_state.describe(gpu_at_start)}); another job's kernels "
                      "slow every timing and no row can show it. Publish only from an idle GPU.[/]")
    if note := cuda_core_dots_note(env.get("gpu_arch")):
        console.print(f"[yellow]note: {note}[/]")
    if "bf16" in dtypes and (note := emulated_bf16_note(env)):
        console.print(f"[yellow]note: {note}[/]")
    env["ceilings"] = measure_ceilings(device, dtypes)
    sessions = previous.get("sessions", [])
    session = {key: env[key] for key in ("time_utc", "git_commit", "command", "ceilings", "torch", "triton")}
    session["load_at_start"] = None if busy is None else busy.describe()
    if gpu_at_start is not None:
        session["gpu_at_start"] = gpu_at_start
    env["sessions"] = [*sessions, session]  # rows name theirs in the `session` column (index into this list)
    if previous:  # the first session's record stays the run's; later ones are in `sessions`
        env = {**env, **{k: v for k, v in previous.items() if k != "sessions"}, "sessions": env["sessions"]}
    env["executor"] = args.executor
    env["node"] = node_name()  # where the driver ran; with Ray, each row's node is in env["nodes"]
    write_env(out_dir / "env.json", env)
    return env, session


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    device = resolve_device(args.device)
    preset = get_preset(args.preset).for_device(device)
    plan, dtypes = checked_plan(args, preset, device)

    run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{preset.name}"
    out_dir = _out_dir(args, run_id)
    if (out_dir / "results.csv").exists() and (out_dir / "results.csv").stat().st_size and not args.resume:
        raise ValueError(f"{out_dir} already holds a run; add --resume to complete it, or choose another --out.")
    if args.dry_run:
        from kanbench.cli_plan import print_plan

        print_plan(plan, device, out_dir, args.resume, console)
        return 0
    executor = get_executor(args.executor, args.ray_address)  # before anything is written: fail fast
    writable_folder(out_dir)
    with folder_lock.hold(out_dir):  # one run at a time writes a folder
        previous = _previous_session(args, out_dir, preset.name, device)
        run_id = previous.get("run_id", run_id)  # a resumed run keeps its id
        started = time.perf_counter()
        env, session = _start_session(args, plan, dtypes, device, run_id, out_dir, previous, console)
        runner = Runner(plan, out_dir, run_id, session["ceilings"], args.resume, len(env["sessions"]) - 1, executor,
                        untimed=untimed_pool(plan.threads) if executor is None else None)
        for repair in runner.repairs:
            console.print(f"[yellow]{repair}[/]")
        try:
            with stops_on_termination():
                skipped = runner.run(progress=not args.no_progress)
        except KeyboardInterrupt as err:
            runner.close()
            signum = getattr(err, "signum", signal.SIGINT)
            console.print(f"[yellow]interrupted ({signal.Signals(signum).name}): the rows so far are in "
                          f"{out_dir / 'results.csv'}; continue with --resume --out {out_dir}[/]")
            return 128 + signum
        except OSError as err:
            if err.errno not in WRITE_FAILURES:
                raise
            with contextlib.suppress(OSError):  # what is still buffered cannot be written either
                runner.close()
            raise ValueError(f"writing the results in {out_dir} failed ({err.strerror}): every complete row so far "
                             f"is kept; make room and continue with --resume --out {out_dir}.") from None
        finally:
            if executor is not None:
                env["nodes"] = {**env.get("nodes", {}), **executor.nodes}
                executor.close()
        # each session's own time; the top level's is the latest session's
        env["wall_seconds"] = session["wall_seconds"] = round(time.perf_counter() - started, 1)
        if "gpu_at_start" in session:  # clocks or reasons that changed during the run (a thermal slowdown, say)
            session["gpu_at_end"] = gpu_state.snapshot(device)
        write_env(out_dir / "env.json", env)
        if skipped:
            console.print(f"resumed: {skipped} units already done were skipped")
        print_summary(out_dir / "results.csv", console)
        console.print(f"done in {env['wall_seconds']} s: {out_dir / 'results.csv'}, env.json, samples.csv")
        if not args.no_report:
            from kanbench.report import make_report

            report = make_report(out_dir)
            console.print(f"report: {report}, {report.with_suffix('.html')} and {out_dir / 'plots'}/")
        return 0


def print_summary(csv_path: Path, console: Console) -> None:
    """The run at a glance (kanbench.report.summary): tables that fit the console, skips grouped by reason."""
    from kanbench.report import profiles, summary

    df = pd.read_csv(csv_path, keep_default_na=False)
    summary.render(summary.accuracy_sections(df) + summary.latency_sections(df) + profiles.profile_sections(df),
                   console, summary.not_run_lines(df))
