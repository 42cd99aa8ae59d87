"""The GPU's state around a run (kanbench/harness/gpu_state.py), read from a stand-in nvidia-smi on the PATH: the
fields and clock-event reasons parsed, the older reasons field used where the newer is refused, None wherever
nvidia-smi cannot say, the busy warning, and `kanbench run` recording the state in env.json's session."""

import json
import stat

import pytest

from kanbench.cli import main
from kanbench.harness import gpu_state

GPU_LINE = "57, 1755, 1980, 2619, 3201, 61, 402.31, 700.00, 0x0000000000000024"
APPS = "4242, 81234\n777, 512"


def fake_smi(tmp_path, monkeypatch, gpu_line=GPU_LINE, apps=APPS, refuse="", exit_code=0):
    """An ``nvidia-smi`` that prints ``gpu_line`` for --query-gpu and ``apps`` for --query-compute-apps; it exits 2
    when its arguments contain ``refuse`` (an unknown field, as a driver without it answers)."""
    script = tmp_path / "bin" / "nvidia-smi"
    script.parent.mkdir(exist_ok=True)
    script.write_text(f"""#!/bin/sh
case "$*" in *"{refuse or '@never@'}"*) echo 'Field is not a valid field to query.'; exit 2;; esac
case "$*" in *--query-compute-apps*) printf '%s\\n' "{apps}";; *) printf '%s\\n' "{gpu_line}";; esac
exit {exit_code}
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")
    return script


def test_the_fields_reasons_and_processes_are_read(tmp_path, monkeypatch):
    fake_smi(tmp_path, monkeypatch)
    state = gpu_state.read_state("GPU-abc")
    assert state["utilization.gpu"] == 57 and state["clocks.sm"] == 1755 and state["clocks.max.sm"] == 1980
    assert state["temperature.gpu"] == 61 and state["power.draw"] == pytest.approx(402.31)
    assert state["clock_event_reasons"] == ["sw_power_cap", "sw_thermal_slowdown"]  # 0x24
    assert state["compute_processes"] == [{"pid": 4242, "used_mib": 81234}, {"pid": 777, "used_mib": 512}]
    assert gpu_state.describe(state) == ("57% utilized, SM clock 1755 of 1980 MHz, clocks held by "
                                         "sw_power_cap+sw_thermal_slowdown, 61 °C, 402 of 700 W")


def test_a_driver_without_the_newer_reasons_field_is_asked_by_the_older_name(tmp_path, monkeypatch):
    fake_smi(tmp_path, monkeypatch, refuse="clocks_event_reasons")
    assert gpu_state.read_state("0")["clock_event_reasons"] == ["sw_power_cap", "sw_thermal_slowdown"]
    fake_smi(tmp_path, monkeypatch, gpu_line=GPU_LINE.rsplit(",", 1)[0], refuse="reasons")
    state = gpu_state.read_state("0")
    assert "clock_event_reasons" not in state and state["clocks.max.mem"] == 3201


@pytest.mark.parametrize("gpu_line, exit_code", [("57, 1755", 0), (GPU_LINE, 9), ("", 0)])
def test_an_answer_it_cannot_read_is_none_not_an_error(tmp_path, monkeypatch, gpu_line, exit_code):
    fake_smi(tmp_path, monkeypatch, gpu_line=gpu_line, exit_code=exit_code)
    assert gpu_state.read_state("0") is None


def test_without_nvidia_smi_or_a_gpu_there_is_no_state(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    assert gpu_state.read_state("0") is None
    assert gpu_state.snapshot("cpu") is None
    assert gpu_state.describe(None) is None


def test_not_supported_fields_are_none_and_unknown_reason_bits_are_kept():
    assert gpu_state._number("[N/A]") is None and gpu_state._number("[Not Supported]") is None
    assert gpu_state.reason_names(0x1 | 0x400) == ["gpu_idle", "0x400"]
    assert gpu_state.reason_names(0) == []


@pytest.mark.parametrize("utilization, processes, expected", [
    (57, [{"pid": 1, "used_mib": 2.0}], "the GPU is 57% utilized before the run, 1 compute process(es) on it"),
    (12, [], "the GPU is 12% utilized before the run"),
    (9, [{"pid": 1, "used_mib": 2.0}], None),
    (None, [], None),
])
def test_a_gpu_busy_before_the_run_is_named(utilization, processes, expected):
    assert gpu_state.busy_before_run({"utilization.gpu": utilization, "compute_processes": processes}) == expected
    assert gpu_state.busy_before_run(None) is None


def test_run_records_the_gpu_at_start_and_end_of_its_session_and_warns_when_busy(tmp_path, monkeypatch, capsys):
    # On a CPU snapshot() is None; standing in for a GPU's answers exercises what `kanbench run` does with them.
    answers = iter([{"utilization.gpu": 80.0, "compute_processes": [{"pid": 9, "used_mib": 100.0}]},
                    {"utilization.gpu": 0.0, "clock_event_reasons": ["gpu_idle"]}])
    monkeypatch.setattr(gpu_state, "snapshot", lambda device: next(answers))
    out = tmp_path / "r"
    assert main(["run", "--no-progress", "--no-report", "--out", str(out), "--variants", "mlp", "--harness",
                 "flops", "--tokens", "8", "--d-model", "16", "--d-hidden", "32"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "warning: the GPU is 80% utilized before the run, 1 compute process(es) on it" in printed
    session = json.loads((out / "env.json").read_text())["sessions"][-1]
    assert session["gpu_at_start"]["utilization.gpu"] == 80.0
    assert session["gpu_at_end"]["clock_event_reasons"] == ["gpu_idle"]


def test_the_gpu_is_named_by_uuid_then_by_index_unless_cuda_visible_devices_renumbers_it(monkeypatch):
    class Props:
        uuid = "5c1d2e3f-aaaa-bbbb-cccc-0123456789ab"

    monkeypatch.setattr(gpu_state.torch.cuda, "get_device_properties", lambda index: Props())
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu_state.gpu_ids("cuda:1") == ["GPU-5c1d2e3f-aaaa-bbbb-cccc-0123456789ab", "1"]
    Props.uuid = "GPU-5c1d2e3f-aaaa-bbbb-cccc-0123456789ab"  # some builds print the prefix themselves
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert gpu_state.gpu_ids("cuda:0") == ["GPU-5c1d2e3f-aaaa-bbbb-cccc-0123456789ab"]
    asked = []
    monkeypatch.setattr(gpu_state, "read_state", lambda gpu: asked.append(gpu) or None)
    assert gpu_state.snapshot("cuda:0") is None and asked == ["GPU-5c1d2e3f-aaaa-bbbb-cccc-0123456789ab"]
