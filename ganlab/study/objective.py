"""What a study optimises: the objectives, the metrics the training loop measures, the value
a trial reports to the pruner at each evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

from ganlab.errors import GanlabError
from ganlab.metrics.names import INLOOP_METRICS, inloop_value
from ganlab.metrics.stability import SCALE

if TYPE_CHECKING:
    from ganlab.study.spec import StudySpec

__all__ = ["DIVERGED_INSTABILITY", "INLOOP_METRICS", "combined_objective_values", "lower_is_better", "mean_metrics",
           "named_objective_values", "seed_mean", "spread_metric", "OBJECTIVES", "Objective", "PRUNE_PROXY", "WEIGHTED", "describe_pruning", "inloop_value",
           "measured_in_loop", "scalar_for_pruning"]


@dataclass(frozen=True)
class Objective:
    name: str
    direction: str  # minimize | maximize
    metric: str | None  # the key in the final evaluation's metrics
    needs_inception: bool = False
    doc: str = ""


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective("swd", "minimize", "val/swd", doc="sliced Wasserstein distance on Laplacian-pyramid patches"),
        Objective("color_hist", "minimize", "val/color_hist", doc="distance of the a/b colour histograms"),
        Objective("val_l1", "minimize", "val/L1", doc="validation L1 in the network's scaling"),
        Objective("colorfulness_gap", "minimize", "val/colorfulness_gap", doc="|colourfulness(real) - colourfulness(fake)|"),
        Objective("psnr", "maximize", "val/psnr", doc="PSNR on RGB"),
        Objective("ssim", "maximize", "val/ssim", doc="SSIM on RGB"),
        Objective("kid", "minimize", "val/kid", needs_inception=True, doc="kernel Inception distance"),
        Objective("fid", "minimize", "fid", needs_inception=True, doc="Frechet Inception distance on the validation set"),
        Objective("instability", "minimize", None, doc="the instability score of the run's logged series"),
    )
}


# What a pruned study watches when its objective is not measured in the training loop (fid,
# instability): the validation sliced Wasserstein distance.
PRUNE_PROXY = "val/swd"
# Per-pixel fidelity is no proxy for quality here: on held-out photos a generator that outputs no
# colour at all beats real colourisers on L1, PSNR and SSIM, so a pruner watching val/L1 keeps the
# conservative, brownish models the adversarial term exists to avoid. A distribution distance
# (the sliced Wasserstein distance of Laplacian-pyramid patches) ranks them the right way round.
# Studies begun before this default kept pruning on what they were begun with:
LEGACY_PRUNE_PROXY = "val/L1"


WEIGHTED = "weighted"


def measured_in_loop(objective: str) -> bool:
    return OBJECTIVES[objective].metric in INLOOP_METRICS


# The instability a diverged seed of a several-seed trial counts with: above every run that
# finished, degenerate ones (10 + their loss-shape score, at most 20) included.
DIVERGED_INSTABILITY = 2 * SCALE


def spread_metric(spec: "StudySpec") -> str:
    """The final quality whose spread over a trial's seeds is the seed-spread term of the
    instability score: the study's first quality objective, else val/swd."""
    for name in spec.objectives:
        if OBJECTIVES[name].metric is not None:
            return OBJECTIVES[name].metric
    return PRUNE_PROXY


def named_objective_values(spec: "StudySpec", metrics: Mapping[str, float], instability: float) -> dict[str, float]:
    """Each objective of the study (by name, before any weighting) for one run."""
    values = {}
    for name in spec.objectives:
        o = OBJECTIVES[name]
        if o.metric is None:
            values[name] = instability
        elif o.metric in metrics:
            v = metrics[o.metric]
            values[name] = abs(v) if name == "colorfulness_gap" else v
        else:
            raise GanlabError(f"objective {name}: the run did not produce {o.metric}")
    return values


def combined_objective_values(spec: "StudySpec", values: Mapping[str, float]) -> list[float]:
    """The values Optuna is told: each objective, or their weighted sum in a weighted study."""
    if spec.weights:
        w = dict(spec.weights)
        sign = {n: (1.0 if OBJECTIVES[n].direction == "minimize" else -1.0) for n in spec.objectives}
        return [sum(sign[n] * w.get(n, 0.0) * values[n] for n in spec.objectives)]
    return [values[n] for n in spec.objectives]


def seed_mean(spec: "StudySpec", records: list[dict]) -> tuple[dict[str, list[float]], dict[str, float]]:
    """A several-seed trial's objectives: per objective the value of each seed, and their mean.

    A quality objective is the mean over the seeds that finished; the instability objective the
    mean over all seeds, a diverged seed counting as :data:`DIVERGED_INSTABILITY` (so that a
    configuration that diverges on some seeds is never the calmer for it)."""
    per_seed: dict[str, list[float]] = {}
    for name in spec.objectives:
        values = []
        for r in records:
            if "objectives" in r:
                values.append(float(r["objectives"][name]))
            elif OBJECTIVES[name].metric is None:
                values.append(DIVERGED_INSTABILITY)
        per_seed[name] = values
    return per_seed, {n: float(sum(v) / len(v)) for n, v in per_seed.items()}


def mean_metrics(records: list[dict]) -> dict[str, float]:
    """The in-loop metrics of the finished seeds, averaged key by key."""
    keys = set.intersection(*(set(r["metrics"]) for r in records))
    return {k: sum(r["metrics"][k] for r in records) / len(records) for k in sorted(keys)}


def lower_is_better(spec: "StudySpec", metrics: Mapping[str, float]) -> float | None:
    """The value ganlab's median rule compares (:mod:`ganlab.study.pruning`), turned so that lower
    is better; None when the evaluation did not produce it."""
    label, _ = spec.pruning_target
    if label == WEIGHTED or spec.scalarised:
        v = scalar_for_pruning(spec, metrics)
        return None if v is None else (v if spec.directions[0] == "minimize" else -v)
    key = OBJECTIVES[label].metric if label in OBJECTIVES else label
    v = inloop_value(key or "", metrics)
    if v is None:
        return None
    return v if INLOOP_METRICS.get(key, "minimize") == "minimize" else -v


def scalar_for_pruning(spec: "StudySpec", metrics: Mapping[str, float]) -> float | None:
    """The value reported to the pruner at an evaluation, in the study's direction; None when the
    evaluation did not produce it."""
    label, _ = spec.pruning_target
    if label == WEIGHTED:
        w = dict(spec.weights)
        total = 0.0
        for n in spec.objectives:
            if not w.get(n, 0.0):
                continue
            v = inloop_value(OBJECTIVES[n].metric or "", metrics)
            if v is None:
                return None
            total += (1.0 if OBJECTIVES[n].direction == "minimize" else -1.0) * w[n] * v
        return total
    if label in OBJECTIVES:
        return inloop_value(OBJECTIVES[label].metric or "", metrics)
    v = inloop_value(label, metrics)
    if v is not None and INLOOP_METRICS.get(label, "minimize") != spec.directions[0]:
        v = -v  # a higher-is-better proxy in a minimised study (or the reverse)
    return v


def describe_pruning(spec: "StudySpec") -> str:
    label, is_objective = spec.pruning_target
    if is_objective:
        return f"on the objective ({label}) at each evaluation"
    outside = [o for o in spec.objectives if not measured_in_loop(o)]
    why = "set by prune_on" if spec.prune_on else f"{', '.join(outside) or 'the objective'} is not measured during training"
    return f"on {label} at each evaluation ({why})"
