"""Run folders: numbered, one per run, holding everything the run makes::

    config.json      the configuration as layered (auto values stay auto; env.json says what ran)
    tricks.json      the trick stack in its fold order, with parameters
    env.json         versions, device, precision and the CPU threads the run used
    status.json      running | finished | stopped | diverged, the newest checkpoint's step, and
                     "best": the best evaluation's checkpoint, metric, value and step
    .lock            flock'd by the process training the run (pid and host inside)
    stats.jsonl      every logged scalar, one row per step
    events.out...    TensorBoard
    samples/         grey input | generated | ground truth grids
    checkpoints/     step-NNNNNNN.pt, written atomically, the last few kept; best.pt, the
                     generator of the best evaluation (weights only); final.pt, a finished run's
                     last generator once its step checkpoints were dropped (weights only)
"""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganlab.version import __version__
from ganlab.errors import UsageError
from ganlab.io import atomic_write_json
from ganlab import runtime as runtime_module
from ganlab.runtime import Runtime
from ganlab.threads import Budget

__all__ = ["check_writable", "environment", "is_run_dir", "new_run_dir", "write_status"]


def check_writable(folder: Path, flag: str, advice: str) -> None:
    """Refuse a folder this process cannot write into, before any work, with one line."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".ganlab-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{flag} {folder}: cannot write there ({exc.strerror}); {advice}") from None


def new_run_dir(out: str, name: str) -> Path:
    """A new numbered run folder ``<out>/<NNNNN>-<name>``, safe against concurrent runs."""
    root = Path(out).expanduser()
    check_writable(root, "--out", "choose a writable folder")
    while True:
        numbers = [int(m.group(1)) for p in root.iterdir() if (m := re.match(r"(\d{5})-", p.name))]
        run = root / f"{max(numbers, default=-1) + 1:05d}-{name}"
        try:
            run.mkdir()
            return run
        except FileExistsError:  # another process took this number
            continue


def environment(runtime: Runtime, threads: Budget | None = None) -> dict[str, Any]:
    """Versions, device, precision and the CPU threads the run used (``cpu_threads``; with a
    thread budget also ``interop_threads`` and ``threads_why``)."""
    env = {
        "ganlab": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(runtime.device),
        "precision": runtime.precision,
        "precision_why": runtime.precision_why,
        "channels_last": runtime.channels_last,
        "channels_last_why": runtime.channels_last_why,
        "cpu_threads": torch.get_num_threads(),
    }
    if threads is not None:
        env["interop_threads"] = torch.get_num_interop_threads()
        env["threads_why"] = threads.why
    if runtime.device.type == "cpu":
        caps = runtime_module.cpu_capabilities()  # looked up here: the one source of the choice above
        env["cpu"] = caps.get("cpu_name", platform.processor())
        env["cpu_features"] = sorted(k for k in ("amx_bf16", "avx512_bf16", "avx512_f", "avx2") if caps.get(k))
    if runtime.device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(runtime.device)
        env["cuda"] = torch.version.cuda
    return env


def is_run_dir(path: Path) -> bool:
    return (path / "config.json").is_file()




def write_status(run_dir: Path, status: str, step: int, total: int, **extra: Any) -> None:
    """``status.json``: running | finished | stopped | diverged, ``step`` the newest intact
    checkpoint's step (where a resume continues), the marks in ``extra`` (``trained_step``,
    ``diverged_step``, ``best``: ``{"checkpoint", "metric", "value", "step"}``, ...) and the total
    steps, written atomically."""
    atomic_write_json(run_dir / "status.json", {"status": status, "step": step, **extra, "total": total})
