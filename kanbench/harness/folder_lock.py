"""One ``kanbench run`` at a time per run folder.

Two runs appending to one results.csv would write the same configuration twice (each resumes from what it read at
its start) and time each other's work. ``kanbench run --resume`` without ``--out`` picks the newest folder, which is
the one a run in another terminal is still writing, so this happens by accident. The run holds an advisory lock on
the folder itself (``flock`` on the directory: no lock file is left among the results, and the kernel drops the
lock when the process ends, however it ends); a second run into it stops with a message before it reads anything.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no advisory locks; runs are not guarded
    fcntl = None  # type: ignore[assignment]


class FolderBusyError(ValueError):
    """Another kanbench run holds the folder."""


@contextmanager
def hold(folder: Path) -> Iterator[None]:
    """Hold ``folder`` (which must exist) for the duration; FolderBusyError if another process holds it. Where the
    file system cannot lock (some network mounts), the run goes on unguarded."""
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise FolderBusyError(f"{folder} is being written by another kanbench run; wait for it to finish "
                                      "(then --resume completes it), or choose another --out.") from None
            # any other errno (ENOLCK, EBADF on some mounts): no lock support there; unguarded rather than refused
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
