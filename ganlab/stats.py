"""A cheap statistics bus: ``report(name, value)`` from anywhere, fanned out at flush time.

Inside the training step values stay on the device: ``report`` only appends a detached tensor
to a buffer. Every ``log_every`` steps the trainer calls :meth:`StatsBus.flush`, which reads all
buffered values with one host transfer and hands the per-step rows to the sinks (TensorBoard,
``stats.jsonl``, the console). Tricks report through this bus and never import TensorBoard.

``stats.jsonl`` holds one JSON object per step: ``{"step": 12, "D/loss_real": 0.69, ...}``.
A value reported several times in one step (a step with several D or G updates) keeps every
update's value beside its mean (``NAME#k``, ``NAME@max``; see :meth:`StatsBus.flush`).
After a resume a step may appear twice; :func:`read_series` keeps the last row of each step.
"""

from __future__ import annotations

import contextvars
import json
import math
import os
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch

from ganlab.io import atomic_write_bytes

# The bus of the run whose step is executing: a context variable, not a module global, so that
# a value reported by a trick reaches its own run's bus whatever else runs in the process (each
# thread starts with an empty context; asyncio tasks and ``contextvars.copy_context`` keep theirs).
_active: contextvars.ContextVar["StatsBus | None"] = contextvars.ContextVar("ganlab_stats_bus", default=None)


def report(name: str, value) -> None:
    """Record ``value`` (a tensor, reduced by its mean, or a number) under ``name`` for this step,
    in the bus of the run that is executing in this thread (or context); nowhere outside a run."""
    bus = _active.get()
    if bus is not None:
        bus.add(name, value)


class StatsBus:
    """Buffers reported values per step; ``flush`` turns them into rows for the sinks."""

    def __init__(self, sinks: Iterable[Callable[[int, dict[str, float]], None]] = ()):
        self.sinks = list(sinks)
        self.step = 0
        self._buf: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))

    def add(self, name: str, value) -> None:
        if isinstance(value, torch.Tensor):
            value = value.detach()
            if value.numel() != 1:
                value = value.float().mean()
            value = value.reshape(())
        self._buf[self.step][name].append(value)

    def pending(self) -> dict[str, list]:
        """What was reported for the current step and not flushed yet: ``{name: [values]}``
        (tensors stay on the device)."""
        return {name: list(values) for name, values in self._buf.get(self.step, {}).items()}

    @contextmanager
    def activate(self) -> Iterator["StatsBus"]:
        token = _active.set(self)
        try:
            yield self
        finally:
            _active.reset(token)

    def flush(self) -> list[tuple[int, dict[str, float]]]:
        """Reduce the buffer to one row per step and send it out.

        A name reported once in a step is its value. A name reported ``n > 1`` times in a step
        (one report per update, when a step makes several D or G updates) is written as the mean
        under its own name (as before), the largest value under ``NAME@max``, and every update's
        value in order under ``NAME#0`` ... ``NAME#{n-1}``: averaging must not hide a spike.
        :func:`per_update` reads such a series back as one value per update.
        """
        if not self._buf:
            return []
        tensors: list[torch.Tensor] = []
        entries: list[tuple[int, str, list]] = []
        rows: list[tuple[int, dict[str, float]]] = []
        for step in sorted(self._buf):
            for name, values in self._buf[step].items():
                slots = []
                for v in values:
                    if isinstance(v, torch.Tensor):
                        slots.append(("t", len(tensors)))
                        tensors.append(v.float())
                    else:
                        slots.append(("n", float(v)))
                entries.append((len(rows), name, slots))
            rows.append((step, {}))
        # One device -> host transfer for the whole window.
        host = torch.stack([t.to(tensors[0].device) for t in tensors]).cpu().tolist() if tensors else []
        for i, name, slots in entries:
            vals = [host[x] if kind == "t" else x for kind, x in slots]
            row = rows[i][1]
            if len(vals) == 1:
                row[name] = vals[0]
                continue
            row[name] = sum(vals) / len(vals)
            row[f"{name}{MAX_SUFFIX}"] = max(vals, key=lambda v: (v if math.isfinite(v) else math.inf))
            for k, v in enumerate(vals):
                row[f"{name}{UPDATE_SEP}{k}"] = v
        self._buf.clear()
        for sink in self.sinks:
            for step, row in rows:
                sink(step, row)
        return rows


UPDATE_SEP = "#"  # NAME#k: the k-th update's value of NAME in a step with several updates
MAX_SUFFIX = "@max"  # NAME@max: the largest of them


class JsonlSink:
    """Appends one JSON line per step to ``path`` (NaN and Inf written as strings)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fh = open(self.path, "a", encoding="utf-8")

    def __call__(self, step: int, row: dict[str, float]) -> None:
        clean = {k: (v if math.isfinite(v) else str(v)) for k, v in row.items()}
        self._fh.write(json.dumps({"step": step, **clean}) + "\n")

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class TensorBoardSink:
    """Writes every value as a scalar with its step."""

    def __init__(self, writer):
        self.writer = writer

    def __call__(self, step: int, row: dict[str, float]) -> None:
        for name, value in row.items():
            if UPDATE_SEP not in name:  # the per-update values stay in stats.jsonl; TensorBoard gets mean and max
                self.writer.add_scalar(name, value, step)


def truncate_stats(path: str | os.PathLike, before: int) -> None:
    """Keep the rows of ``stats.jsonl`` for steps before ``before`` (and drop a torn last line):
    a resumed run computes the steps after its checkpoint again, and each step is written once.
    The file is replaced atomically."""
    path = Path(path)
    if not path.exists():
        return
    kept = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
                step = int(row["step"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
            if step < before:
                kept.append(line if line.endswith("\n") else line + "\n")
    atomic_write_bytes(path, "".join(kept).encode("utf-8"))


def read_series(path: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """Read ``stats.jsonl`` into ``{name: [(step, value), ...]}`` sorted by step.

    Rows written twice for the same step keep the last one (a resume truncates the file to its
    checkpoint, so this only matters for files edited by hand). A truncated final line (a killed
    run) is ignored.
    """
    by_step: dict[int, dict[str, float]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            step = int(row.pop("step"))
            by_step.setdefault(step, {}).update({k: float(v) for k, v in row.items()})
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for step in sorted(by_step):
        for name, value in by_step[step].items():
            series[name].append((step, value))
    return dict(series)


def per_update(series: dict[str, list[tuple[int, float]]], name: str) -> list[tuple[int, int, float]]:
    """``name``'s values one per update, as ``(step, k, value)`` in order: a step with several
    updates gives its ``NAME#k`` values (k = 0, 1, ...), a step with one its ``NAME`` value."""
    prefix = f"{name}{UPDATE_SEP}"
    by_step: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for tag, rows in series.items():
        if tag.startswith(prefix) and tag[len(prefix):].isdigit():
            k = int(tag[len(prefix):])
            for step, value in rows:
                by_step[int(step)].append((k, value))
    out = [(step, k, v) for step in sorted(by_step) for k, v in sorted(by_step[step])]
    for step, value in series.get(name, ()):
        if int(step) not in by_step:
            out.append((int(step), 0, value))
    out.sort(key=lambda r: (r[0], r[1]))
    return out
