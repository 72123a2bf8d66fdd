"""Atomic file writes: write to a temporary name beside the target, flush, fsync, rename.

A reader (or a resumed run) never sees a half-written file: either the old one or the new one.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], None]) -> Path:
    path = Path(path)
    try:
        # Not mkstemp: its files are 0600 whatever the umask, so a shared runs folder would hold
        # checkpoints and logs that no one else (nor a TensorBoard run as another user) can read.
        while True:
            tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
                break
            except FileExistsError:
                continue
    except OSError as exc:
        exc.filename = str(path)  # the target, not the temporary name
        raise
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a failed write() names no file; say which one it was
        raise
    try:  # make the rename itself durable (a power cut after it keeps the new file)
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode())


class _RememberWriteError:
    """A file proxy that keeps the OSError of a failed write: torch.save reports a full disk as
    a bare RuntimeError ("unexpected pos"), which would hide the reason."""

    def __init__(self, fh):
        self.fh, self.error = fh, None

    def write(self, data):
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self):
        return self.fh.flush()


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    import torch

    def write(fh):
        proxy = _RememberWriteError(fh)
        try:
            torch.save(obj, proxy)
        except RuntimeError:
            if proxy.error is not None:
                raise proxy.error from None
            raise

    return atomic_write(path, write)
