"""Units that time nothing, spread over the machine's cores while nothing is being timed.

A unit whose rows hold no clock reading (:meth:`kanbench.harness.base.Harness.times` is False: the tuned accuracy
protocol's search runs, which score validation only) gives the same rows wherever and beside whatever it runs. A
local run hands its runner this pool (:func:`untimed_pool`), and the runner gives it those units first: one worker
process per thread the run may use, each on one torch thread; the runner waits for all of them, then measures
everything timed in its own process, alone, as before. So a timed unit never shares the machine (a second job on
2 cores distorts CPU timings up to 20×), and the search, 108 of the default run's 168 training runs, runs on
every core at once instead of one run after another.

Workers are forked (Linux; elsewhere the runner keeps every unit in-process): a forked worker inherits every
variant and harness registered so far, those a script or a test registered at run time included. A worker that
dies (killed for memory, say) takes the units then running with it: each gets an ``error`` row, and a fresh pool
takes the units still to run. Where no worker can be forked at all, the units run in the runner's process.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import torch

from kanbench.executors.worker import rows_in_memory
from kanbench.harness.base import Harness, Unit


def can_fork() -> bool:
    """Whether this platform forks workers safely (Linux; a freshly started interpreter instead would not know the
    variants registered at run time)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with(parent: int) -> None:
    """Ask Linux to kill this worker when the thread that forked it ends: a parent killed outright (SIGKILL, the OOM
    killer, a ``kill`` of its pid alone) otherwise leaves its workers running their training runs, then idle for
    ever, beside whatever the machine times next. Set only where the main thread forks (the signal follows the
    forking thread, not the process)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # no prctl: the parent's own shutdown remains the only one
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _worker_init(parent: int, forked_by_main_thread: bool) -> None:
    """One torch thread before any op (as torch's DataLoader workers do: no OpenMP pool crosses the fork); the
    process's own stdout/stderr rather than the parent's progress-bar proxies, whose locks another thread of the
    parent may have held when it forked; Ctrl-C ends the worker quietly (the parent reports the interrupt); and the
    worker ends with its parent (:func:`_die_with`)."""
    if forked_by_main_thread:
        _die_with(parent)
    torch.set_num_threads(1)
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))


def measure_untimed(plan: Any, harness: Harness, batch: list[Unit], run_id: str, session: int) -> list[dict]:
    """The batch's rows, measured in this process (it times nothing: no ceilings, no samples)."""
    return rows_in_memory(plan, harness, batch, run_id, session, {}, [])[0]


def untimed_pool(threads: int) -> UntimedPool | None:
    """The pool a local run of ``threads`` threads hands its runner: None where there is one thread, or no fork."""
    return UntimedPool(threads) if threads > 1 and can_fork() else None


class UntimedPool:
    """``workers`` single-threaded processes (started with the first round, kept for the run)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self.fork_error: OSError | None = None  # set once forking failed: later units run in the caller's process

    def _submit(self, *call: Any) -> tuple[Future, ProcessPoolExecutor]:
        if self._pool is None:
            # the fork context starts every worker here, in the calling thread, at the first submit
            forked_by_main_thread = threading.current_thread() is threading.main_thread()
            self._pool = ProcessPoolExecutor(self.workers, multiprocessing.get_context("fork"),
                                             initializer=_worker_init, initargs=(os.getpid(), forked_by_main_thread))
        with warnings.catch_warnings():  # Python 3.12+ warns of forking a threaded process: see _worker_init
            warnings.simplefilter("ignore", DeprecationWarning)
            return self._pool.submit(*call), self._pool

    def run_round(self, runner: Any, harness: Harness, batches: list[list[Unit]],
                  advance: Callable[[int], None]) -> None:
        """Measure ``batches`` in the workers, at most one per worker in flight (so that a worker's death costs
        only the batches then running); each batch's rows are recorded as soon as it returns."""
        todo = list(reversed(batches))
        pending: dict[Future, tuple[list[Unit], ProcessPoolExecutor]] = {}
        try:
            while todo or pending:
                while todo and len(pending) < self.workers and self.fork_error is None:
                    batch = todo.pop()
                    try:
                        future, pool = self._submit(measure_untimed, runner.plan, harness, batch,
                                                    runner.ctx.run_id, runner.ctx.session)
                    except OSError as err:  # no worker could be forked (memory, a process limit)
                        self.fork_error = err
                        todo.append(batch)
                        break
                    pending[future] = (batch, pool)
                if not pending:  # no worker: the rest here, one after another
                    for batch in reversed(todo):
                        runner.record(measure_untimed(runner.plan, harness, batch, runner.ctx.run_id,
                                                      runner.ctx.session))
                        advance(len(batch))
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    batch, pool = pending.pop(future)
                    try:
                        rows = future.result()
                    except Exception as err:  # noqa: BLE001 - the unit's row says what failed; the run goes on
                        rows = self.failed_rows(runner, harness, batch, err)
                        if isinstance(err, BrokenProcessPool) and pool is self._pool:
                            self.close()  # a worker died, and every batch then running with it: a fresh pool
                    runner.record(rows)
                    advance(len(batch))
        except KeyboardInterrupt:  # Ctrl-C reached the workers too; a SIGTERM to the run alone did not
            self.close(stop_running=True)
            raise

    @staticmethod
    def failed_rows(runner: Any, harness: Harness, batch: list[Unit], err: BaseException) -> list[dict]:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        what = ("a worker process died while this unit ran" if isinstance(err, BrokenProcessPool) else
                "failed in its worker process")
        return [runner.ctx.row(config, harness.name, mode, harness.name, None, "", status="error",
                               message=f"{what}: {type(err).__name__}: {first_line}")
                for config, _, mode in batch]

    def close(self, stop_running: bool = False) -> None:
        """Shut the workers down; ``stop_running`` kills those still training instead of waiting for them (an
        interrupted run: their rows would be discarded anyway, and a search run can take minutes)."""
        if self._pool is None:
            return
        if stop_running:
            # the executor's own process table (Python 3.14's ProcessPoolExecutor.kill_workers does the same)
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.kill()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None
