"""A run's logs: the stats bus and its sinks (TensorBoard, ``stats.jsonl``), the throughput
window and the stability terms over a moving window (``stability/...`` scalars)."""

from __future__ import annotations

import math
import time
from pathlib import Path

from ganlab.errors import Diverged
from ganlab.metrics.stability import StabilityWindow
from ganlab.stats import StatsBus, TensorBoardSink

__all__ = ["RunLogs", "quietly"]


def quietly(fn, *args, **kwargs) -> OSError | None:
    """Run a clean-up write; an OSError (the disk that stopped the run) is returned, not raised."""
    try:
        fn(*args, **kwargs)
    except OSError as exc:
        return exc
    return None


def _first_nonfinite(rows) -> tuple[int, str, float] | None:
    for step, row in rows:
        for name, value in row.items():
            if not math.isfinite(value):
                return step, name, value
    return None


class RunLogs:
    """The stats bus of a run and where it writes. ``n_window`` counts the steps since the last
    flush (the throughput window); ``last`` holds the newest value of every statistic."""

    def __init__(self, run_dir: Path, batch_size: int, writer, jsonl):
        self.writer, self.jsonl, self.batch_size = writer, jsonl, batch_size
        self.bus = StatsBus([TensorBoardSink(writer), jsonl])
        self.last: dict[str, float] = {}
        self.t_window, self.n_window = time.perf_counter(), 0
        self.stability = StabilityWindow()

    def flush(self) -> None:
        """Write what was reported since the last flush; a NaN or Inf stops the run (Diverged)."""
        elapsed = time.perf_counter() - self.t_window
        rows = self.bus.flush()
        if rows:
            for name, value in self.stability.update(rows).items():
                self.writer.add_scalar(f"stability/{name}", value, rows[-1][0])
        if self.n_window and elapsed > 0 and rows:
            ips = self.n_window * self.batch_size / elapsed
            rows[-1][1]["perf/img_per_s"] = ips
            self.writer.add_scalar("perf/img_per_s", ips, rows[-1][0])
            self.jsonl(rows[-1][0], {"perf/img_per_s": ips})
        self.jsonl.flush()
        self.t_window, self.n_window = time.perf_counter(), 0
        bad = _first_nonfinite(rows)
        if bad is not None:
            raise Diverged(*bad)
        for _, row in rows:
            self.last.update(row)

    def close(self) -> None:
        # Closing the logs on a full disk fails too; that must not hide why the run stopped.
        quietly(self.writer.flush)
        quietly(self.writer.close)
        quietly(self.jsonl.close)
