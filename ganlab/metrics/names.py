"""The metrics the in-loop evaluation reports, the direction in which each is better, and the
value a comparison counts. Plain Python: the configuration's check reads it without torch.

What ``ganlab.train.inloop.evaluate`` reports every ``--eval-every`` steps: ``val/L1`` plus
:func:`ganlab.metrics.inloop_metrics`; ``val/kid`` only where the Inception weights are already
here. ``--best-metric``, a study's ``prune_on`` and its pruner read these names.
"""

from __future__ import annotations

from typing import Mapping

__all__ = ["INLOOP_METRICS", "inloop_value"]

INLOOP_METRICS: dict[str, str] = {
    "val/L1": "minimize", "val/swd": "minimize", "val/ab_swd": "minimize", "val/color_hist": "minimize",
    "val/psnr": "maximize",
    "val/ssim": "maximize", "val/ab_l1": "minimize", "val/colorfulness_gap": "minimize", "val/kid": "minimize",
}


def inloop_value(key: str, metrics: Mapping[str, float]) -> float | None:
    """``metrics[key]`` as a comparison counts it (the colourfulness gap by its size); None when
    the evaluation did not produce it."""
    v = metrics.get(key)
    if v is None:
        return None
    return abs(v) if key == "val/colorfulness_gap" else float(v)
