"""What keeps a run folder whole while a process trains it: stop signals that save, and one writer.

:class:`StopSignals` turns SIGINT and SIGTERM into a request the training loop reads after each
step: the step in progress is finished, a checkpoint is written, and the run ends with
:class:`~ganlab.errors.Stopped` (exit code 130 or 143). A second signal raises at once: the
checkpoint being written, if any, is a temporary file and the previous one stays intact. Before
the loop starts (data loading, building) a signal stops the process at once too. A signal that
the process inherited as ignored (``nohup``) stays ignored.

:class:`RunLock` is an OS lock (``fcntl.flock``) on ``<run>/.lock``, held by the one process
that trains the run; the OS drops it when the process ends, however it ends, so a crashed run
never blocks its own resume. A second trainer is refused with one line naming the holder's pid
and host. Readers (eval, colorize, report, export) never take it.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import threading
from pathlib import Path

from ganlab.errors import UsageError
from ganlab.errors import Stopped

__all__ = ["LOCK_NAME", "RunLock", "StopSignals", "lock_holder"]

LOCK_NAME = ".lock"
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """SIGINT/SIGTERM handlers for the duration of a run (main thread only; elsewhere inert)."""

    def __init__(self):
        self.signum: int | None = None
        self.training = False  # in the loop: the first signal only asks to stop
        self.run_dir: Path | None = None
        self.checkpoint: int | None = None  # the newest checkpoint on disk
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                current = signal.getsignal(sig)
                if current is signal.SIG_IGN:
                    continue
                self._previous[sig] = current
                signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        if self.training and self.signum is None:
            self.signum = signum  # finish the step, save, stop
            return
        self.restore()  # a third signal gets the default behaviour
        raise Stopped(signum, self.run_dir, self.checkpoint, saved=False)

    @property
    def requested(self) -> bool:
        return self.signum is not None


def lock_holder(run_dir: Path) -> str:
    try:
        text = (Path(run_dir) / LOCK_NAME).read_text().split()
        return f"pid {text[0]} on {text[1]}" if len(text) >= 2 else "another process"
    except OSError:
        return "another process"


class RunLock:
    """An exclusive ``flock`` on ``<run>/.lock`` while this process trains the run."""

    def __init__(self, run_dir: Path, flag: str = "--resume"):
        import fcntl

        self.path = Path(run_dir) / LOCK_NAME
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise UsageError(f"{flag} {run_dir}: the run is being trained by {lock_holder(run_dir)}; one process "
                             f"trains a run folder at a time: stop that one first (or wait for it to end)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self.fd: int | None = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
