"""tools/gpu_session.sh is the one prepared call of a lent GPU (minutes of device time, none to spare): each of its
`kanbench run` steps must get past the flag checks and plan the kernels beside the references. Here every step
runs on the CPU as written, only the sizes shrunk and the FLOP count alone measured, the Triton impls planned and
skipped (no interpreter: their kernels' own tests check them): a flag the run refuses would otherwise surface only
on the device (as `--impl triton_unfused` did for kat-b, whose variants lack it)."""

import re
import shlex
from pathlib import Path

import pandas as pd
import pytest

from kanbench.cli import main

SCRIPT = (Path(__file__).resolve().parents[1] / "tools" / "gpu_session.sh").read_text()
KERNELS = re.search(r"^kernels=(\S+)$", SCRIPT, re.M).group(1)
STEPS = [shlex.split(line.replace('"$kernels"', KERNELS)) for line in re.findall(r"^step (.+)$", SCRIPT, re.M)]
SMALL = {"kat-b": ["--tokens", "16", "--d-model", "16"], "spark-topk": ["--tokens", "16", "--d-model", "64"],
         "decode-gemma2b": ["--decode-tokens", "1"], "ffn-768": ["--tokens", "16", "--d-model", "16"]}


def test_the_session_runs_the_four_gpu_presets_then_profiles_the_targets():
    assert [step[0] for step in STEPS] == ["kat-b", "spark-topk", "decode-gemma2b", "ffn-768", "ffn-768", "kat-b",
                                           "ffn-768"]
    profiled = [step for step in STEPS if "profile" in " ".join(step)]
    # run_gpu_sets.sh adds --cuda-graph to every run, which a run without the latency harness refuses
    assert len(profiled) == 2 and all(step[step.index("--harness") + 1] == "latency,profile" for step in profiled)


def test_the_kernel_tests_on_the_device_leave_out_the_compiles_for_other_gpus():
    """test_kernels_compile.py compiles for sm_75, sm_86, sm_90 and sm_100 without a GPU (CI runs it): on the device
    it would spend device time on nothing the GPU checks."""
    (command,) = re.findall(r"^timeout \d+ python3 -m pytest [^\n]*tests/test_kernels_\*\.py[^\n]*\n[^\n]*",
                            SCRIPT, re.M)
    assert '-k "not test_kernels_compile"' in command


@pytest.mark.parametrize("step", STEPS, ids=[" ".join(step).replace(KERNELS, "$kernels") for step in STEPS])
def test_each_step_plans_the_kernels_beside_the_references(tmp_path, monkeypatch, step):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    preset, *flags = step
    out = tmp_path / "run"
    assert main(["run", "--preset", preset, *flags, *SMALL[preset], "--device", "cpu", "--harness", "flops",
                 "--no-progress", "--no-report", "--out", str(out)]) == 0
    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    impls = set(df.impl)
    assert "reference" in impls and impls & {"triton", "triton_fused", "triton_unfused"}, impls
    assert impls <= set(KERNELS.split(","))


def test_the_profiles_traces_travel_apart_from_the_sets():
    """A file over 16 MiB does not come back from the device: the traces (megabytes each) must not take the sets'
    CSVs down with them."""
    (sets,) = re.findall(r'^\s*tar czf "\$out/sets.tar.gz" (.+)$', SCRIPT, re.M)
    assert "--exclude=profiles" in sets
    assert re.search(r'tar czf "\$out/profiles.tar.gz"', SCRIPT)
