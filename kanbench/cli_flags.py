"""``kanbench run``'s flags read and checked before anything runs: names resolved (an unknown one lists the known
and the nearest), numbers in range, flags the run would ignore refused, and the plan they make."""

from __future__ import annotations

import argparse
import fnmatch
import os

import torch

from kanbench import registry
from kanbench.harness import accuracy
from kanbench.harness.base import get_harness, measurement_names
from kanbench.harness.env import DTYPES
from kanbench.harness.plan import Plan, make_plan
from kanbench.harness.presets import Preset
from kanbench.names import UnknownNameError, unknown_name_message


def split_flag(value: str | None, flag: str) -> list[str] | None:
    """A comma-separated flag's items; None where the flag is not given. Given but naming nothing (an empty shell
    variable, say) is an error: it would otherwise mean the preset's default, or nothing at all."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ValueError(f"{flag} '{value}' names nothing; give comma-separated values, or leave {flag} out for the "
                         "preset's.")
    return items


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity: a container's cpuset, taskset), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def int_flag(value: str | None, flag: str) -> list[int] | None:
    """A comma-separated flag's positive integers, each once, in order; None where the flag is not given."""
    items = split_flag(value, flag)
    if items is None:
        return None
    try:
        out = [int(v) for v in items]
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated positive integers, got '{value}'.") from None
    if any(v < 1 for v in out):
        raise ValueError(f"{flag} takes positive integers, got '{value}'.")
    return list(dict.fromkeys(out))  # a repeated value once: the same configuration twice would be two rows


def resolve_variants(value: str) -> list[str]:
    """``all``, comma-separated names, or glob patterns; an unknown name lists the known ones."""
    known = registry.list_variants()
    if value == "all":
        return known
    chosen: list[str] = []
    for item in split_flag(value, "--variants") or []:
        if any(ch in item for ch in "*?["):
            matched = [n for n in known if fnmatch.fnmatchcase(n, item)]
            if not matched:
                raise ValueError(f"--variants pattern '{item}' matches nothing; known variants: {', '.join(known)}.")
            chosen += matched
        else:
            registry.get_variant(item)  # raises with the nearest name
            chosen.append(item)
    return list(dict.fromkeys(chosen))


def resolve_device(value: str) -> str:
    """``--device``: auto (the GPU if torch sees one), cpu, cuda or cuda:N; a GPU asked for that is not there is an
    error, not a silent CPU run."""
    if value == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if value not in ("cpu", "cuda") and not value.startswith("cuda:"):
        raise ValueError(f"--device must be auto, cpu or cuda, got '{value}'.")
    if value.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device here; use --device cpu or auto.")
    return value


def refuse_flags_that_do_not_apply(args: argparse.Namespace, preset: Preset, device: str,
                                   harnesses: list[str]) -> None:
    """A flag this run would ignore is an error (the user meant it to change something): sizes of a mode the preset
    lacks, accuracy settings without the accuracy harness, CUDA graphs without CUDA or without latency."""
    if args.tokens and not [m for m in preset.modes if m != "decode"]:
        raise ValueError(f"preset {preset.name} measures only the decode mode: give its batch sizes with "
                         f"--decode-tokens, not --tokens.")
    if args.decode_tokens and "decode" not in preset.modes:
        raise ValueError(f"preset {preset.name} has no decode mode (modes: {', '.join(preset.modes)}): "
                         "--decode-tokens has nothing to set; use --tokens.")
    unused = [flag for flag, value in (("--tasks", args.tasks), ("--match", args.match), ("--protocol", args.protocol))
              if value is not None]
    if unused and "accuracy" not in harnesses:
        raise ValueError(f"{', '.join(unused)} set the accuracy harness, which this run leaves out (harnesses: "
                         f"{', '.join(harnesses)}); add accuracy to --harness, or drop {', '.join(unused)}.")
    if args.cuda_graph and (device == "cpu" or "latency" not in harnesses):
        why = "this run measures on the cpu" if device == "cpu" else "this run leaves out the latency harness"
        raise ValueError(f"--cuda-graph adds a CUDA-graph latency column, and {why}: drop --cuda-graph.")


def checked_plan(args: argparse.Namespace, preset: Preset, device: str) -> tuple[Plan, list[str]]:
    """The run's plan from its flags, and its dtypes, every flag checked first: an unknown name, a value out of
    range or a flag this run would ignore is a ValueError saying what is accepted, and an impossible shape fails
    here, before anything runs. Sets torch's thread count."""
    variants = (registry.list_variants(list(preset.variants)) if args.variants is None
                else resolve_variants(args.variants))
    harnesses = split_flag(args.harness, "--harness") or list(preset.harness_names())
    for h in harnesses:
        get_harness(h)  # raises with the known harness names and the nearest
    match, protocol = args.match or "params", args.protocol or "tuned"
    if match not in ("params", "flops", "none"):
        raise ValueError(f"--match must be params, flops or none, got '{match}'.")
    refuse_flags_that_do_not_apply(args, preset, device, harnesses)
    tasks = split_flag(args.tasks, "--tasks")
    for t in tasks or []:
        accuracy.get_task(t)  # raises with the known task names and the nearest
    dtypes = split_flag(args.dtype, "--dtype") or list(preset.dtypes)
    for d in dtypes:
        if d not in DTYPES:
            raise UnknownNameError(unknown_name_message("dtype", d, DTYPES))
    impls = split_flag(args.impl, "--impl")
    if impls:  # any variant's impl is a name (one list serves several presets); each variant runs those it has
        known_impls = {i for v in registry.list_variants() for i in registry.get_variant(v).impl_names()}
        for impl in impls:
            if impl not in known_impls:
                raise UnknownNameError(unknown_name_message("impl", impl, sorted(known_impls)))
    if args.seeds is not None and args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}.")
    cores = usable_cores()
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}; leave it out to use all {cores} cores.")
    if args.threads is not None and args.threads > cores and args.executor == "local":
        raise ValueError(f"--threads {args.threads} is more than the {cores} cores this process may use: the extra "
                         f"threads would wait for a core, and the times would measure that wait; give at most "
                         f"{cores}, or leave it out.")
    threads = args.threads or cores
    torch.set_num_threads(min(threads, cores))  # with Ray, --threads is the nodes' (checked against the cluster)
    plan = make_plan(preset, variants, impls, device, dtypes, int_flag(args.tokens, "--tokens"),
                     int_flag(args.d_model, "--d-model"), args.d_hidden, harnesses, args.seeds or 1, threads,
                     args.cuda_graph, tasks, match, args.seeds or 3,
                     int_flag(args.decode_tokens, "--decode-tokens"), protocol)
    measuring = set(harnesses) & set(measurement_names())
    if not plan.items and ((measuring and impls) or not plan.accuracy_items):  # accuracy trains the references
        with_impls = f" in any of the impls {', '.join(impls)}" if impls else ""
        raise ValueError(f"nothing to run: no chosen variant ({', '.join(variants)}) has the preset's form "
                         f"'{preset.form}'{with_impls}.")
    for config, _ in plan.items:  # impossible shapes fail here, before anything runs; validated once
        config.validate()
    return plan, dtypes
