"""The command line as a newcomer meets it: every bad input is one line that says what to do, before any work;
`list` shows every impl and why one cannot run here; the top-level help names every subcommand."""

import pandas as pd
import pytest
import torch

from kanbench.cli import main
from kanbench.harness.results import COLUMNS


def one_line(capsys) -> str:
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(("args", "message"), [
    (["--out", "/proc/kanbench-cannot-write-here"], "cannot write there"),
    (["--threads", "0"], "--threads must be >= 1"),
    (["--threads", "100000"], "--threads 100000 is more than the"),  # more threads than cores time the waiting
    (["--impl", ""], "--impl '' names nothing"),  # an empty shell variable: not "no impl", not "the default"
    (["--tokens", ","], "--tokens ',' names nothing"),
    (["--tasks", "digits", "--match", "flops"], "--tasks, --match set the accuracy harness, which this run leaves "
                                                "out (harnesses: flops); add accuracy to --harness"),
    (["--device", "cpu", "--cuda-graph"], "--cuda-graph adds a CUDA-graph latency column, and this run measures on "
                                          "the cpu"),
    (["--d-hidden", "0"], "d_hidden must be a positive integer"),
    (["--preset", "decode-gemma2b", "--tokens", "8"], "measures only the decode mode: give its batch sizes with "
                                                      "--decode-tokens"),
    (["--preset", "kat-b", "--decode-tokens", "2"], "has no decode mode"),
])
def test_bad_run_input_is_one_line_before_any_work(tmp_path, capsys, args, message):
    code = main(["run", "--no-progress", "--variants", "mlp", "--harness", "flops", *(["--out", str(tmp_path / "r")]
                 if "--out" not in args else []), *args])
    assert code == 2
    out = one_line(capsys)
    assert message in out and "Traceback" not in out
    assert not (tmp_path / "r").exists()  # nothing was written


def test_one_impl_list_serves_presets_whose_variants_have_only_some_of_them(tmp_path):
    """tools/gpu_session.sh passes every kernel impl to each preset: kat-b's variants (grkan, mlp) lack
    triton_unfused and sparse_cpu, and that is not an error; each variant runs the impls it has."""
    out = tmp_path / "r"
    assert main(["run", "--no-progress", "--no-report", "--out", str(out), "--preset", "kat-b", "--harness", "flops",
                 "--tokens", "16", "--d-model", "16", "--dtype", "fp32",
                 "--impl", "reference,triton,triton_fused,triton_unfused,cuda,sparse_cpu"]) == 0
    df = pd.read_csv(out / "results.csv")
    assert set(zip(df.variant, df.impl, strict=True)) == {("grkan", "reference"), ("grkan", "triton"),
                                                          ("grkan", "cuda"), ("mlp", "reference")}


def test_a_repeated_size_is_measured_once(tmp_path):
    out = tmp_path / "r"
    assert main(["run", "--no-progress", "--no-report", "--out", str(out), "--variants", "mlp", "--impl", "reference",
                 "--harness", "flops", "--tokens", "8,4,8", "--decode-tokens", "2,2", "--d-model", "16,16"]) == 0
    df = pd.read_csv(out / "results.csv")
    per_config = df.groupby(["mode", "tokens", "d_model", "metric", "stat"]).size()
    assert per_config.max() == 1 and sorted(set(df.tokens)) == [2, 4, 8]


def test_an_out_that_is_a_file_says_so(tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    assert main(["run", "--no-progress", "--out", str(a_file), "--harness", "flops"]) == 2
    assert "is a file, not a folder" in one_line(capsys)


def test_a_run_says_where_its_device_lacks_tensor_core_dots_or_bf16_arithmetic(tmp_path, capsys, monkeypatch):
    """Stood in for a T4's env (sm_75, no bf16 arithmetic): the run prints both notes before measuring, and the
    bf16 one only where the run measures bf16."""
    from kanbench import cli_run

    real = cli_run.environment
    monkeypatch.setattr(cli_run, "environment", lambda device, argv=None: {
        **real(device, argv), "gpu": "Tesla T4", "gpu_arch": "sm_75", "bf16_native": False})
    args = ["run", "--no-progress", "--no-report", "--variants", "mlp", "--harness", "flops", "--tokens", "8",
            "--d-model", "16"]
    assert main([*args, "--out", str(tmp_path / "bf16"), "--dtype", "bf16"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "sm_75: Triton's tl.dot has no tensor cores" in printed and "Tesla T4 has no bf16 arithmetic" in printed
    assert main([*args, "--out", str(tmp_path / "fp32"), "--dtype", "fp32"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "no tensor cores" in printed and "bf16 arithmetic" not in printed


def test_decode_tokens_sets_the_decode_batch_sizes(tmp_path):

    out = tmp_path / "r"
    assert main(["run", "--no-progress", "--no-report", "--out", str(out), "--variants", "mlp", "--harness", "flops",
                 "--tokens", "8", "--decode-tokens", "3,5", "--d-model", "16", "--d-hidden", "32"]) == 0
    flops = pd.read_csv(out / "results.csv").query("harness == 'flops'")
    assert set(flops[flops["mode"] == "decode"].tokens) == {3, 5}
    assert set(flops[flops["mode"] != "decode"].tokens) == {8}


@pytest.mark.parametrize(("content", "message"), [("", "holds no header and no rows"),
                                                  (",".join(COLUMNS) + "\n", "holds no rows")])
def test_report_on_an_empty_results_file_is_one_line(tmp_path, capsys, content, message):
    (tmp_path / "results.csv").write_text(content)
    assert main(["report", str(tmp_path)]) == 2
    assert message in one_line(capsys)


@pytest.mark.parametrize("command", [["report"], ["targets"], ["compare", "OTHER"]])
@pytest.mark.parametrize("header", ["a,b", "run_id,variant,impl", ",".join(["variant", *COLUMNS])])
def test_a_results_file_kanbench_did_not_write_is_refused_in_one_line(tmp_path, capsys, command, header):
    """Another tool's CSV, one cut short before kanbench's columns, or columns in another order: a message naming
    kanbench's columns, not a pandas traceback from a missing column."""
    (tmp_path / "results.csv").write_text(header + "\n1,2,3\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.csv").write_text(",".join(COLUMNS) + "\n")
    args = [str(other) if a == "OTHER" else a for a in command]
    assert main([args[0], str(tmp_path), *args[1:]]) == 2
    out = one_line(capsys)
    assert "is not a results table kanbench wrote" in out and "kanbench's begin run_id, variant, impl, form" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine every impl can run: nothing is marked")
def test_version_names_kanbench_its_commit_and_the_versions_figures_depend_on(capsys):
    import sys

    import torch

    from kanbench import __version__

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    said = capsys.readouterr().out
    assert said.startswith(f"kanbench {__version__} (commit ")
    assert f"python {sys.version.split()[0]}, torch {torch.__version__}, triton " in said


def test_list_of_a_misspelt_name_suggests_the_nearest_and_a_pattern_lists_the_known(capsys):
    assert main(["list", "grkn"]) == 1
    assert "unknown variant 'grkn'. Did you mean 'grkan'?" in capsys.readouterr().out
    assert main(["list", "zz*"]) == 1
    assert "no variant matches 'zz*'; known variants: af_kan" in capsys.readouterr().out


def test_list_shows_every_impl_and_why_one_cannot_run_here(capsys, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # as a user's shell has it (the tests set it)
    monkeypatch.setenv("COLUMNS", "100")  # a narrow terminal: paper and defaults move under the table
    assert main(["list", "grkan"]) == 0
    out = one_line(capsys)
    assert "reference" in out and "triton_fused" in out  # every impl is in the table (cells may fold)
    assert "grkan/triton, grkan/triton_fused, grkan/ikan: Triton kernels need a CUDA GPU" in out  # with its reason
    assert "✗ grkan/cuda: impl 'cuda' runs on cuda, not cpu" in out
    assert "Kolmogorov-Arnold Transformer (arXiv 2409.10594); defaults groups=8" in out  # whole, under the table
    assert main(["list", "--usable", "grkan"]) == 0
    usable = one_line(capsys)
    assert "reference" in usable and "triton" not in usable


def test_list_names_the_gpu_and_its_architecture_and_says_where_triton_has_no_tensor_cores(capsys, monkeypatch):
    from kanbench.harness import env

    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # stood in: the listing reads no GPU beyond this
    for gpu, arch, note in (("Tesla T4", "sm_75", True), ("NVIDIA H100 80GB HBM3", "sm_90", False)):
        monkeypatch.setattr(env, "gpu_identity", lambda device, g=gpu, a=arch: {"gpu": g, "gpu_arch": a,
                                                                               "bf16_native": a != "sm_75"})
        assert main(["list", "mlp"]) == 0
        out = one_line(capsys)
        assert f"this machine: cpu, cuda: {gpu} ({arch})" in out
        assert ("Triton's tl.dot has no tensor cores" in out) is note


def test_top_level_help_names_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("kanbench list", "kanbench run", "kanbench report", "kanbench compare", "kanbench targets",
                    "kanbench import-benchmark"):
        assert command in out
