"""The run folder: one run at a time writes it (a second ``kanbench run`` into a folder another process is
writing stops before it reads or writes anything, and goes through once that process has ended), and a disk that
fills up mid-run ends the run with a line that says what to do, every complete row kept for --resume."""

import errno
import subprocess
import sys

import pandas as pd
import pytest

from kanbench.cli import main
from kanbench.harness import folder_lock
from kanbench.harness.results import ResultWriter

needs_fcntl = pytest.mark.skipif(folder_lock.fcntl is None, reason="advisory folder locks are POSIX; elsewhere "
                                 "runs are not guarded")

RUN = ["run", "--variants", "mlp", "--harness", "flops", "--tokens", "8", "--d-model", "16",
       "--no-progress", "--no-report"]
HOLDER = ("import sys, pathlib; from kanbench.harness import folder_lock\n"
          "with folder_lock.hold(pathlib.Path(sys.argv[1])):\n"
          "    print('held', flush=True); sys.stdin.read()\n")


@needs_fcntl
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


@needs_fcntl
def test_the_lock_is_released_when_the_run_ends_even_by_an_error(tmp_path):
    with pytest.raises(RuntimeError), folder_lock.hold(tmp_path):
        with pytest.raises(folder_lock.FolderBusyError), folder_lock.hold(tmp_path):
            pass  # a second holder, even in this process (flock locks belong to the open descriptor)
        raise RuntimeError("a run that fails")
    with folder_lock.hold(tmp_path):
        pass


def test_a_full_disk_mid_run_says_what_to_do_and_resume_completes_the_run(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    args = [*RUN, "--variants", "mlp,glu", "--impl", "reference", "--out", str(out)]
    write = ResultWriter.write
    calls = {"n": 0}

    def fills_up(self, rows):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, rows)

    monkeypatch.setattr(ResultWriter, "write", fills_up)
    assert main(args) == 2
    said = " ".join(capsys.readouterr().out.split())
    assert f"writing the results in {out} failed (No space left on device): every complete row so far is kept; " \
           f"make room and continue with --resume --out {out}." in said
    kept = pd.read_csv(out / "results.csv", keep_default_na=False)
    monkeypatch.setattr(ResultWriter, "write", write)
    assert main([*args, "--resume"]) == 0
    done = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert len(done) > len(kept) and set(done.variant) == {"mlp", "glu"}
    assert not done.duplicated(["harness", "variant", "mode", "metric", "stat"]).any()


def test_other_os_errors_are_not_taken_for_a_full_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(ResultWriter, "write", lambda self, rows: (_ for _ in ()).throw(FileNotFoundError(2, "x")))
    with pytest.raises(FileNotFoundError):
        main([*RUN, "--variants", "mlp", "--out", str(tmp_path / "run")])


def test_resume_refuses_another_preset_or_device_than_the_folders(tmp_path, capsys):
    """A folder describes one preset on one device (env.json, the report's header, the targets): a resume with
    another would file its rows under the first's description."""
    import json

    out = tmp_path / "run"
    assert main([*RUN, "--variants", "mlp", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main([*RUN, "--variants", "grkan", "--preset", "kat-b", "--d-model", "16", "--out", str(out),
                 "--resume"]) == 2
    said = " ".join(capsys.readouterr().out.split())
    assert f"{out} holds a run with preset default, not kat-b: resume it with --preset default" in said
    env = json.loads((out / "env.json").read_text())
    (out / "env.json").write_text(json.dumps({**env, "device": "cuda"}))
    assert main([*RUN, "--variants", "mlp", "--out", str(out), "--resume"]) == 2
    assert "holds a run with device cuda, not cpu: resume it with --device cuda" in capsys.readouterr().out
