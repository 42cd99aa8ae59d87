"""report: plots and report.md on a small synthetic run; compare: a planted 2x slowdown is flagged, a change
within the spread is not."""

import json
from pathlib import Path

import pandas as pd
import pytest

from kanbench.cli import main
from kanbench.harness.results import COLUMNS
from kanbench.registry import list_variants
from kanbench.report import make_report
from kanbench.report.plots import PLOT_NAMES


def synthetic_run(folder: Path, slow: dict[str, float] | None = None, noise: float = 0.0) -> Path:
    """Every variant: latency at two token counts and a decode batch curve, memory, FLOPs, accuracy; one variant
    failed with OOM so its status must show."""
    folder.mkdir(parents=True)
    rows, samples = [], []
    slow = slow or {}

    def add(variant, harness, mode, metric, value, unit, stat="value", tokens=256, status="ok", message="",
            params=1000, seed=0):
        rows.append({c: "" for c in COLUMNS} | {
            "run_id": "synthetic", "variant": variant, "impl": "reference", "form": "block", "harness": harness,
            "mode": mode, "metric": metric, "value": value, "unit": unit, "stat": stat, "device": "cpu",
            "dtype": "fp32", "tokens": tokens, "d_model": 64, "d_hidden": 256, "shape": f"{tokens}x64",
            "params": params, "hparams": "{}", "seed": seed, "status": status, "message": message})

    for i, variant in enumerate(list_variants()):
        base = (1.0 + i) * slow.get(variant, 1.0) * (1 + noise)
        if variant == "relu_kan":
            add(variant, "latency", "fwd_bwd", "latency", "", "ms", "median", status="oom",
                message="OutOfMemoryError: CUDA out of memory (synthetic)")
            continue
        for tokens in (256, 1024):
            for mode in ("fwd_no_grad", "fwd_bwd"):
                t = base * tokens / 256 * (3 if mode == "fwd_bwd" else 1)
                for stat, v in (("median", t), ("p20", 0.97 * t), ("p80", 1.03 * t)):
                    add(variant, "latency", mode, "latency", v, "ms", stat, tokens)
                samples += [{"run_id": "synthetic", "variant": variant, "impl": "reference", "form": "block",
                             "mode": mode, "device": "cpu", "dtype": "fp32", "tokens": tokens, "d_model": 64,
                             "d_hidden": 256, "hparams": "{}", "seed": 0, "method": "synthetic", "sample": k,
                             "ms": t * (0.97 + 0.01 * k)} for k in range(7)]
                add(variant, "flops", mode, "flops_matmul_elementwise", 1e6 * tokens * (1 + i), "FLOP",
                    tokens=tokens)
            add(variant, "memory", "fwd_bwd", "saved_for_backward", 2**20 * (1 + i), "B", tokens=tokens)
        for batch in (1, 4, 16):
            add(variant, "latency", "decode", "latency", 0.1 * (1 + i) * (0.5 if variant == "spark_ffn" else 1),
                "ms", "median", batch)
        if variant == "spark_ffn":
            for batch in (1, 4, 16):
                add(variant, "flops", "decode", "active_fraction", 0.08, "fraction", tokens=batch)
                add(variant, "flops", "decode", "active_union_fraction", 1 - 0.92**batch, "fraction", tokens=batch)
        for seed in range(3):
            add(variant, "accuracy", "digits", "test_accuracy", 0.9 + 0.01 * i + 0.001 * seed, "fraction",
                params=1000 * (1 + i), seed=seed)
            add(variant, "accuracy", "digits", "train_step_time", 2.0 + i, "ms", params=1000 * (1 + i), seed=seed)
            add(variant, "accuracy", "digits", "flops_per_example", 2e4 * (1 + i), "FLOP", params=1000 * (1 + i),
                seed=seed)
        add(variant, "accuracy", "digits", "test_accuracy", 0.9 + 0.01 * i + 0.001, "fraction", "mean", seed=-1)
        add(variant, "accuracy", "digits", "test_accuracy", 0.001, "fraction", "std", seed=-1)
    pd.DataFrame(rows, columns=COLUMNS).to_csv(folder / "results.csv", index=False)
    pd.DataFrame(samples).to_csv(folder / "samples.csv", index=False)
    (folder / "env.json").write_text(json.dumps({"device": "cpu", "cpu": "synthetic", "run_id": "synthetic"}))
    return folder


def test_report_writes_every_plot_and_tables_with_every_variant_and_status(tmp_path):
    run = synthetic_run(tmp_path / "run")
    report = make_report(run)
    assert sorted(path.stem for path in (run / "plots").glob("*.png")) == sorted(PLOT_NAMES)  # every plot
    for name in PLOT_NAMES:
        for suffix in (".png", ".svg"):
            assert (run / "plots" / f"{name}{suffix}").stat().st_size > 1000, name
    text = report.read_text()
    for variant in list_variants():
        assert f"| {variant} |" in text
    assert "oom: OutOfMemoryError" in text  # the failed configuration shows its status, not a blank
    assert "## Accuracy" in text and "0.9" in text
    # fractions are shown as fractions (not scaled like the FLOP columns), the union beside the per-row share
    spark_rows = text.split("## Spark active fractions")[1].split("##")[0]
    assert "| spark_ffn | reference | fp32 | block | 16 | 64 | 0 | decode | 0.08 | 0.7366 |" in spark_rows
    assert "![latency_by_variant](plots/latency_by_variant.png)" in text


def test_compare_flags_a_planted_slowdown_and_not_a_change_within_the_noise(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    a = synthetic_run(tmp_path / "a")
    b = synthetic_run(tmp_path / "b", slow={"grkan": 2.0}, noise=0.01)  # 1 % everywhere, 2x for grkan
    assert main(["compare", str(a), str(b)]) == 0
    printed = capsys.readouterr().out  # off a terminal (a log, a pipe): the table's cells are whole, not "fwd_…"
    assert "fwd_no_grad" in printed and "within noise" in printed and "…" not in printed
    from kanbench.report.compare import compare_runs

    table = compare_runs(a, b)
    flagged = table[table.change == "slower"]
    assert set(flagged.variant) == {"grkan"}
    assert flagged.ratio.between(2.0, 2.05).all()
    assert set(table[table.variant == "mlp"].change) == {"within noise"}
    assert main(["compare", str(a), str(b), "--fail-on-regression", "10"]) == 1
    assert main(["compare", str(a), str(a), "--fail-on-regression", "10"]) == 0


def test_compare_names_each_runs_machine_and_says_when_they_differ(tmp_path, capsys):
    a, b = synthetic_run(tmp_path / "a"), synthetic_run(tmp_path / "b")
    for run in (a, b):
        (run / "env.json").unlink()
    assert main(["compare", str(a), str(b)]) == 0
    assert "no env.json" in capsys.readouterr().out  # not recorded: said, not guessed
    from kanbench.report.compare import machines

    assert machines(a, b) == [f"A = {a}: no env.json (its machine and versions are not recorded)",
                              f"B = {b}: no env.json (its machine and versions are not recorded)"]
    h100 = {"gpu": "NVIDIA H100 80GB HBM3", "gpu_arch": "sm_90", "torch": "2.11.0+cu130", "triton": "3.6.0",
            "git_commit": "abc1234"}
    (a / "env.json").write_text(json.dumps(h100))
    (b / "env.json").write_text(json.dumps({**h100, "gpu": "Tesla T4", "gpu_arch": "sm_75"}))
    line_a, line_b, differ = machines(a, b)
    assert line_a == f"A = {a}: NVIDIA H100 80GB HBM3 (sm_90), torch 2.11.0+cu130, triton 3.6.0, commit abc1234"
    assert line_b.startswith(f"B = {b}: Tesla T4 (sm_75), torch") and "no tensor cores" in line_b
    assert differ.startswith("A and B ran on different devices")
    assert len(machines(a, a)) == 2  # the same machine: no such line
    main(["compare", str(a), str(b)])
    assert "Tesla T4 (sm_75)" in capsys.readouterr().out


def test_compare_of_runs_without_latency_figures_says_so(tmp_path, capsys):
    """An accuracy-only run, and one whose every latency row was skipped: no pivot of absent statistics (a
    KeyError before), the statuses compared where both have the configuration."""
    run = synthetic_run(tmp_path / "run")
    df = pd.read_csv(run / "results.csv", keep_default_na=False)
    accuracy_only, skipped = tmp_path / "accuracy", tmp_path / "skipped"
    for folder, rows in ((accuracy_only, df[df.harness == "accuracy"]),
                         (skipped, df[df.harness == "latency"].assign(status="skipped", value=""))):
        folder.mkdir()
        rows.to_csv(folder / "results.csv", index=False)
    assert main(["compare", str(run), str(accuracy_only)]) == 0
    assert f"no latency rows in {accuracy_only}: compare reads" in capsys.readouterr().out
    other_sizes = tmp_path / "other-sizes"
    other_sizes.mkdir()
    df.assign(tokens="3").to_csv(other_sizes / "results.csv", index=False)
    assert main(["compare", str(run), str(other_sizes)]) == 0
    assert "no configuration is in both runs" in capsys.readouterr().out
    on_a_gpu = tmp_path / "gpu"
    on_a_gpu.mkdir()
    df.assign(device="cuda").to_csv(on_a_gpu / "results.csv", index=False)
    assert main(["compare", str(run), str(on_a_gpu)]) == 0
    assert "A was measured on cpu and B on cuda: compare pairs" in capsys.readouterr().out
    from kanbench.report.compare import compare_runs

    table = compare_runs(run, skipped)
    assert table.change.str.match(r"status \w+ → skipped$").all() and (table.change == "status ok → skipped").any()
    assert main(["compare", str(run), str(skipped), "--fail-on-regression", "10"]) == 1  # stopped running


def test_compare_and_report_reject_a_folder_without_results(tmp_path, capsys):
    assert main(["compare", str(tmp_path), str(tmp_path)]) == 2
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no results.csv" in capsys.readouterr().out


def test_report_and_targets_given_the_results_file_name_its_folder(tmp_path, capsys):
    run = synthetic_run(tmp_path / "run")
    for command in ("report", "targets"):
        assert main([command, str(run / "results.csv")]) == 2
        said = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
        assert f"is a file, not a run folder: give the folder that holds it, {run}." in said


@pytest.mark.parametrize("plots", [True, False])
def test_report_on_a_real_small_run(tmp_path, plots):
    out = tmp_path / "real"
    assert main(["run", "--out", str(out), "--no-progress", "--variants", "mlp,spark_ffn", "--tokens", "8",
                 "--d-model", "16", "--d-hidden", "64", "--harness", "latency,flops,memory", "--no-report"]) == 0
    make_report(out, plots=plots)
    text = (out / "report.md").read_text()
    assert "| spark_ffn |" in text
    compiles = text.split("## Compile time", 1)[1].split("\n## ", 1)[0]  # every compiled shape, and the start-up
    assert "start-up in the process (" in compiles and "is not included" in compiles
    for variant in ("mlp", "spark_ffn"):
        for mode in ("fwd_no_grad", "fwd_bwd"):
            assert f"| {variant} | compiled | fp32 | block | 8 | 16 | 0 | {mode} |" in compiles, (variant, mode)
    assert (out / "plots" / "latency_by_variant.png").exists() == plots


@pytest.mark.parametrize(("text", "says"), [
    ("not json", "is not JSON"),
    ('{"machine_info": {}}', "is not a pytest-benchmark JSON (it has no 'benchmarks' list)"),
    ('{"benchmarks": [{"name": "t", "extra_info": {}}]}', "benchmark t has no stats with rounds"),
    ('{"benchmarks": [{"name": "t", "stats": {"rounds": 3, "median": 1.0}, "extra_info": {"variant": "mlp"}}]}',
     "benchmark t lacks extra_info ['d_hidden', 'd_model', 'device', 'dtype', 'impl', 'mode', 'tokens']"),
])
def test_import_benchmark_refuses_a_file_that_is_not_kanbenchs_benchmark_json(tmp_path, capsys, text, says):
    bad = tmp_path / "bench.json"
    bad.write_text(text)
    assert main(["import-benchmark", str(bad), "--out", str(tmp_path / "run")]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert says in out and "Traceback" not in out
    assert not (tmp_path / "run").exists()  # checked before anything is written


def test_pytest_benchmark_json_round_trips_into_the_csv(tmp_path):
    import subprocess
    import sys

    bench_json = tmp_path / "bench.json"
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/benchmarks", "-k",
                          "mlp-reference or grkan-reference",
                          "--benchmark-enable", "--benchmark-only", "--benchmark-min-rounds=3",
                          "--benchmark-max-time=0.01", "--benchmark-warmup=off", f"--benchmark-json={bench_json}"],
                         cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(bench_json.read_text())
    assert data["machine_info"]["torch"] == __import__("torch").__version__
    assert main(["import-benchmark", str(bench_json), "--out", str(tmp_path / "run")]) == 0
    df = pd.read_csv(tmp_path / "run" / "results.csv", keep_default_na=False)
    assert len(data["benchmarks"]) == 4  # mlp and grkan/reference, two modes each
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        mine = df[(df.variant == info["variant"]) & (df["mode"] == info["mode"]) & (df.impl == info["impl"])]
        stats = mine.set_index("stat").value.astype(float)
        assert stats["median"] == pytest.approx(bench["stats"]["median"] * 1e3, rel=1e-12)
        assert stats["q3"] == pytest.approx(bench["stats"]["q3"] * 1e3, rel=1e-12)
        assert stats["n"] == bench["stats"]["rounds"]
    make_report(tmp_path / "run", plots=False)
