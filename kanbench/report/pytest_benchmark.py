"""Turn a pytest-benchmark JSON (``--benchmark-json``) into kanbench's results.csv and env.json, so `report` and
`compare` apply to CI's benchmarks too. Each benchmark must carry kanbench's configuration in ``extra_info``."""

from __future__ import annotations

import json
from pathlib import Path

from kanbench.harness.results import Config, ResultWriter, row

# pytest-benchmark statistic -> kanbench stat (seconds -> ms); q1/q3 keep their own names: they are not p20/p80
STATS = {"median": "median", "min": "min", "max": "max", "mean": "mean", "stddev": "stddev", "q1": "q1", "q3": "q3"}


CONFIG_KEYS = {"variant", "impl", "mode", "device", "dtype", "tokens", "d_model", "d_hidden"}
WRITTEN_BY = "give the file `pytest --benchmark-json=PATH` wrote"


def read_benchmarks(json_path: Path) -> dict:
    """The pytest-benchmark JSON at ``json_path``, checked to be one (a ValueError that says what is wrong if not)."""
    try:
        data = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{json_path} is not JSON ({err}); {WRITTEN_BY}.") from err
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ValueError(f"{json_path} is not a pytest-benchmark JSON (it has no 'benchmarks' list); {WRITTEN_BY}.")
    for bench in data["benchmarks"]:
        name = bench.get("name", "?") if isinstance(bench, dict) else repr(bench)
        if not isinstance(bench, dict) or not isinstance(bench.get("stats"), dict) or "rounds" not in bench["stats"]:
            raise ValueError(f"{json_path}: benchmark {name} has no stats with rounds; {WRITTEN_BY}.")
        missing = CONFIG_KEYS - set(bench.get("extra_info") or {})
        if missing:
            raise ValueError(f"{json_path}: benchmark {name} lacks extra_info {sorted(missing)}; kanbench's own "
                             f"benchmarks (tests/benchmarks) record them.")
    return data


def import_benchmark(json_path: Path, out_dir: Path) -> Path:
    data = read_benchmarks(json_path)  # every benchmark checked before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = ResultWriter(out_dir / "results.csv")
    run_id = f"pytest-benchmark-{str(data.get('datetime', ''))[:19]}"
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        config = Config(info["variant"], info["impl"], info.get("form", "block"), info["device"], info["dtype"],
                        int(info["tokens"]), int(info["d_model"]), int(info["d_hidden"]))
        stats, source = bench["stats"], f"pytest-benchmark {bench.get('name', '?')}"
        rows = [row(config, run_id, "latency", info["mode"], "latency", stats[k] * 1e3, "ms", v, message=source)
                for k, v in STATS.items() if k in stats]
        rows.append(row(config, run_id, "latency", info["mode"], "latency", stats["rounds"], "count", "n",
                        message=source))
        writer.write(rows)
    writer.close()
    machine = data.get("machine_info", {})
    env = {"run_id": run_id, "device": machine.get("device"), "cpu": machine.get("cpu", {}).get("brand_raw"),
           "python": machine.get("python_version"), "torch": machine.get("torch"), "triton": machine.get("triton"),
           "torch_threads": machine.get("torch_threads"), "git_commit": data.get("commit_info", {}).get("id"),
           "command": "pytest tests/benchmarks (imported with kanbench import-benchmark)"}
    (out_dir / "env.json").write_text(json.dumps(env, indent=2) + "\n")
    return out_dir / "results.csv"
