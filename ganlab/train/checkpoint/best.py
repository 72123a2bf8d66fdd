"""The best evaluation's generator: ``RUN/checkpoints/best.pt`` (weights only) and
:class:`BestSoFar`, the running record of which evaluation it holds."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Callable

from ganlab.errors import GanlabError
from ganlab.io import atomic_torch_save
from ganlab.metrics.names import INLOOP_METRICS, inloop_value
from ganlab.train.checkpoint.format import BEST_FILE, UnsafeCheckpoint, first_nonfinite_weight, weights_payload
from ganlab.train.checkpoint.read import read_checkpoint

__all__ = ["BestSoFar", "best_checkpoint", "save_best"]


def save_best(run_dir: Path, session, step: int, best: dict) -> Path | None:
    """Write ``RUN/checkpoints/best.pt`` atomically: the generator (and its moving average where
    a trick keeps one) after ``step`` steps, with ``best`` = ``{"metric", "value", "step"}``.
    Nothing is written (None) when a weight is NaN or Inf."""
    G_eval = session.stack.eval_generator(session.G, session.ctx)
    payload = weights_payload(step, json.loads(json.dumps(session.cfg.to_dict(), default=str)), session.G.state_dict(),
                              G_eval.state_dict() if G_eval is not session.G else None, best)
    if first_nonfinite_weight(payload) is not None:
        return None
    folder = run_dir / "checkpoints"
    folder.mkdir(exist_ok=True)
    return atomic_torch_save(folder / BEST_FILE, payload)


def best_checkpoint(run_dir: Path, map_location="cpu") -> tuple[Path, dict]:
    """``RUN/checkpoints/best.pt`` and its payload; GanlabError naming the fix when there is none."""
    path = Path(run_dir) / "checkpoints" / BEST_FILE
    if not path.is_file():
        cfg = _run_config(run_dir)
        why = ("it was trained with --best-metric none" if cfg.get("best_metric") == "none" else
               "it was trained before ganlab kept one, or stopped before its first evaluation (--eval-every)")
        raise GanlabError(f"{run_dir}: no best checkpoint ({BEST_FILE}): {why}; use --checkpoint latest, or train a run "
                          "with --best-metric METRIC")
    return path, read_checkpoint(path, map_location)


def _run_config(run_dir: Path) -> dict:
    try:
        data = json.loads((Path(run_dir) / "config.json").read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


@dataclasses.dataclass
class BestSoFar:
    """The run's best evaluation of ``metric`` (``none``: not tracked): its value and the step
    it came after. ``value``/``step`` are None until an evaluation produced the metric."""

    metric: str
    value: float | None = None
    step: int | None = None
    recorded: str | None = None  # the metric of the kept record (differs from metric only under "none")

    def improves(self, metrics: dict) -> float | None:
        """The value of this evaluation when it beats the best so far (the first one always
        does), else None."""
        if self.metric == "none":
            return None
        value = inloop_value(self.metric, metrics)
        if value is None or not math.isfinite(value):
            return None
        if self.value is None or (value < self.value if INLOOP_METRICS[self.metric] == "minimize" else value > self.value):
            return value
        return None

    def record(self, value: float, step: int) -> None:
        self.value, self.step, self.recorded = float(value), int(step), self.metric

    def status(self) -> dict:
        """``{"best": {...}}`` for status.json, or {} before the first best."""
        if self.value is None:
            return {}
        return {"best": {"checkpoint": f"checkpoints/{BEST_FILE}", "metric": self.recorded or self.metric,
                         "value": self.value, "step": self.step}}

    @classmethod
    def resume(cls, run_dir: Path, metric: str, start: int, warn: Callable[[str], None] = lambda m: None) -> "BestSoFar":
        """The best so far of a run resumed from step ``start``, read back from its best.pt.

        A best.pt written after the checkpoint (the run was stopped between an evaluation and
        its next checkpoint) is kept: it was evaluated, and the steps trained again reproduce it
        (on the CPU bit for bit; a replaced best must beat it). One chosen by another metric (the
        resume changed ``--best-metric``) is removed: the next evaluation writes a new one."""
        best = cls(metric)
        path = Path(run_dir) / "checkpoints" / BEST_FILE
        if not path.is_file():
            return best
        try:
            rec = read_checkpoint(path).get("best") or {}
            value, step, was = float(rec["value"]), int(rec["step"]), str(rec["metric"])
        except UnsafeCheckpoint:
            raise  # never passed over: a file planted to run code is the user's to see
        except (GanlabError, KeyError, TypeError, ValueError):
            warn(f"{path} is unreadable; removed it, the next evaluation writes a new one")
            path.unlink(missing_ok=True)
            return best
        if metric != "none" and was != metric:
            warn(f"removed {path} (chosen by {was}, not --best-metric {metric}); the next evaluation writes a new one")
            path.unlink(missing_ok=True)
            return best
        best.value, best.step, best.recorded = value, step, was
        return best
