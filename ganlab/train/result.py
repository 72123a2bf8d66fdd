"""What :func:`ganlab.train.train` returns: where the run is, how far it got and what it measured."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RunResult"]


@dataclass
class RunResult:
    """A finished run.

    ``step``: the steps trained; ``metrics``: the last in-loop evaluation (``val/...``);
    ``last``: the newest value of every logged statistic; ``seconds`` and ``images_per_second``:
    the loop's wall time and throughput; ``status``: ``finished``; ``best``: ``{"checkpoint",
    "metric", "value", "step"}`` of ``checkpoints/best.pt``, or ``{}`` when none was kept.
    """

    run_dir: Path
    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    images_per_second: float = 0.0
    status: str = "finished"
    best: dict = field(default_factory=dict)
