"""``kanbench run --dry-run``: the plan the run would make, its skips with their reasons and its unit count, with
nothing measured or written; with --resume, what is already on file."""

import pandas as pd

from kanbench.cli import main

SMALL = ["--tokens", "8", "--d-model", "16", "--d-hidden", "32", "--no-progress", "--no-report"]


def _said(capsys) -> str:
    return " ".join(capsys.readouterr().out.split())  # rich folds long lines


def test_a_dry_run_lists_what_would_run_and_skip_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--variants", "grkan,mlp", "--impl", "reference,cuda", "--harness", "latency,flops",
                 "--out", str(out), "--dry-run", *SMALL]) == 0
    said = _said(capsys)
    assert not out.exists()
    # grkan: reference and cuda, mlp: reference; 2 harnesses × 3 modes (fwd_no_grad, fwd_bwd, decode) each
    assert "18 units to run; nothing was measured or written" in said
    assert "✗ [1] skipped: impl 'cuda' runs on cuda, not cpu" in said
    assert said.count("✗ [1]") == 2  # the cuda row and its legend


def test_a_dry_run_with_resume_counts_the_units_on_file(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", "--variants", "mlp", "--impl", "reference", "--harness", "flops", "--out", str(out), *SMALL]
    assert main(args) == 0
    rows = pd.read_csv(out / "results.csv", keep_default_na=False)
    rows[rows["mode"] != "decode"].to_csv(out / "results.csv", index=False)  # as if cut short before decode
    capsys.readouterr()
    before = (out / "results.csv").read_bytes()
    assert main([*args, "--resume", "--variants", "mlp,glu", "--dry-run"]) == 0
    said = _said(capsys)
    assert "--resume: 2 of the 6 measurement units are already in" in said and "4 units to run" in said
    assert (out / "results.csv").read_bytes() == before


def test_a_dry_run_refuses_what_the_run_would_refuse(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--variants", "mlp", "--harness", "flops", "--out", str(out), *SMALL]) == 0
    assert main(["run", "--variants", "mlp", "--harness", "flops", "--out", str(out), "--dry-run", *SMALL]) == 2
    assert "already holds a run; add --resume" in _said(capsys)


def test_a_dry_run_counts_the_accuracy_searches_and_final_runs(tmp_path, capsys):
    """Accuracy plans its final runs only once its searches are on file: the dry run counts both from the plan
    (3 seeds, 6 learning-rate × preparation settings searched on seed 0, for mlp on digits)."""
    assert main(["run", "--variants", "mlp", "--harness", "accuracy,flops", "--impl", "reference", "--tasks",
                 "digits", "--out", str(tmp_path / "run"), "--dry-run", *SMALL]) == 0
    said = _said(capsys)
    assert "accuracy: 3 training runs on digits + 6 search runs (tuned protocol)" in said
    assert "12 units to run" in said  # 3 FLOPs units (fwd_no_grad, fwd_bwd, decode) + 3 + 6
