"""One run at a time per run folder: a second ``kanbench run`` into a folder another process is writing stops
before it reads or writes anything, and goes through once that process has ended."""

import subprocess
import sys

import pytest

from kanbench.cli import main
from kanbench.harness import folder_lock

pytest.importorskip("fcntl", reason="advisory folder locks are POSIX; elsewhere runs are not guarded")

RUN = ["run", "--variants", "mlp", "--harness", "flops", "--tokens", "8", "--d-model", "16",
       "--no-progress", "--no-report"]
HOLDER = ("import sys, pathlib; from kanbench.harness import folder_lock\n"
          "with folder_lock.hold(pathlib.Path(sys.argv[1])):\n"
          "    print('held', flush=True); sys.stdin.read()\n")


def test_a_run_into_a_folder_another_process_writes_stops_and_goes_through_after(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main([*RUN, "--out", str(out), "--resume"]) == 2
        said = " ".join(capsys.readouterr().out.split())
        assert f"{out} is being written by another kanbench run" in said
        assert list(out.iterdir()) == []  # nothing read, nothing written
    finally:
        holder.communicate("")  # the holder ends; the kernel drops its lock
    assert main([*RUN, "--out", str(out), "--resume"]) == 0
    assert (out / "results.csv").stat().st_size > 0


def test_the_lock_is_released_when_the_run_ends_even_by_an_error(tmp_path):
    with pytest.raises(RuntimeError), folder_lock.hold(tmp_path):
        with pytest.raises(folder_lock.FolderBusyError), folder_lock.hold(tmp_path):
            pass  # a second holder, even in this process (flock locks belong to the open descriptor)
        raise RuntimeError("a run that fails")
    with folder_lock.hold(tmp_path):
        pass
