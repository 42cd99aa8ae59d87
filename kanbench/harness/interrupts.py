"""A run stopped by a signal ends as Ctrl-C ends it: the rows so far kept, the untimed pool's workers shut down
(not left training beside whatever the machine runs next), and a line saying how to resume."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP during the measurements, handled as Ctrl-C is."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def stops_on_termination() -> Iterator[None]:
    """SIGTERM (``timeout``, a job scheduler, ``kill``) and SIGHUP (a closed terminal) end the measurements as Ctrl-C
    does: the untimed pool's workers are shut down instead of left running, and the run says how to resume. Only
    the main thread can receive signals; elsewhere the default handlers stay."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        raise Terminated(signum)

    signals = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {signum: signal.signal(signum, stop) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
