"""What a study optimises: the objectives, the metrics the training loop measures, the value
a trial reports to the pruner at each evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

from ganlab.errors import GanlabError, UsageError
from ganlab.metrics.names import INLOOP_METRICS, inloop_value
from ganlab.metrics.stability import RUN_WEIGHTS, SCALE, SEED_WEIGHT
from ganlab.study.record import study_record, write_study

if TYPE_CHECKING:
    from ganlab.study.spec import StudySpec

__all__ = ["DEFAULT_QUALITY", "DIVERGED_INSTABILITY", "STABILITY_FORMULA", "agree_on_stability", "INLOOP_METRICS",
           "combined_objective_values", "default_objectives", "like_l1_control", "lower_is_better", "mean_metrics",
           "named_objective_values", "seed_mean", "seed_term", "OBJECTIVES", "Objective", "PRUNE_PROXY", "WEIGHTED",
           "describe_pruning", "inloop_value", "measured_in_loop", "scalar_for_pruning"]


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
        Objective("ab_swd", "minimize", "val/ab_swd",
                  doc="sliced Wasserstein distance on Laplacian-pyramid patches of the a/b (colour) channels"),
        Objective("swd", "minimize", "val/swd", doc="sliced Wasserstein distance on Laplacian-pyramid patches of RGB"),
        Objective("color_hist", "minimize", "val/color_hist", doc="distance of the a/b colour histograms"),
        Objective("val_l1", "minimize", "val/L1", doc="validation L1 in the network's scaling"),
        Objective("colorfulness_gap", "minimize", "val/colorfulness_gap", doc="|colourfulness(real) - colourfulness(fake)|"),
        Objective("psnr", "maximize", "val/psnr", doc="PSNR on RGB"),
        Objective("ssim", "maximize", "val/ssim", doc="SSIM on RGB"),
        Objective("kid", "minimize", "val/kid", needs_inception=True, doc="kernel Inception distance"),
        Objective("fid", "minimize", "fid", needs_inception=True, doc="Frechet Inception distance on the validation set"),
        Objective("instability", "minimize", None,
                  doc="quality over time and seeds: regression from the best evaluation, volatility, seed spread"),
        Objective("loss_shape", "minimize", None,
                  doc="loss behaviour: D winning outright, loss swings, gradient spikes (caveats: docs/metrics.md)"),
    )
}


# What a pruned study watches when its objective is not measured in the training loop (fid,
# instability): the validation sliced Wasserstein distance.
PRUNE_PROXY = "val/swd"
# Per-pixel fidelity is no proxy for quality here: on held-out photos a generator that outputs no
# colour at all beats real colourisers on L1, PSNR and SSIM, so a pruner watching val/L1 keeps the
# conservative models the adversarial term exists to avoid. RGB SWD ranks grey below every mild
# colour error (though not a constant brown tint: a colouriser's study sets prune_on = "val/ab_swd").
# Studies begun before this default kept pruning on what they were begun with:
LEGACY_PRUNE_PROXY = "val/L1"


WEIGHTED = "weighted"

# A study's quality objective when its definition names none, by task: a colouriser is judged on
# its colours (the a/b SWD ranks a ladder of colour errors as a person would, RGB SWD prefers a
# constant brown tint to a slight cast: docs/metrics.md), paired translation on RGB patches.
DEFAULT_QUALITY = {"colorize": "ab_swd", "paired": "swd"}


def default_objectives(task: str | None) -> list[str]:
    """The objectives of a study whose definition names none: the task's quality objective and
    the instability score."""
    return [DEFAULT_QUALITY.get(task or "colorize", "swd"), "instability"]


# The meaning of the stability objectives, recorded with a study: the instability score of quality
# over time and seeds (docs/metrics.md). Studies scored before it was recorded used the earlier
# formula (loss shape and quality trajectory together, + 10 for a degenerate run).
STABILITY_FORMULA = "quality-over-time-and-seeds-1"


def agree_on_stability(study, spec: "StudySpec", where: str = "") -> None:
    """Every trial of a study is scored with one stability formula: a new study records
    :data:`STABILITY_FORMULA`; a study that already finished trials under an earlier one is
    refused with one line (its values and the new ones would sit on one Pareto front)."""
    if not any(OBJECTIVES[o].metric is None for o in spec.objectives):
        return
    stored = study_record(study).stability_formula
    if stored == STABILITY_FORMULA:
        return
    if stored is None and not any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        write_study(study, stability_formula=STABILITY_FORMULA)
        return
    raise UsageError(f"study {spec.name}{' in ' + where if where else ''} was scored with an earlier instability "
                     f"formula ({stored or 'loss shape and quality together'}), which does not compare with the current "
                     f"one (quality over time and seeds, docs/metrics.md); use --name NEW to start another study")


def measured_in_loop(objective: str) -> bool:
    return OBJECTIVES[objective].metric in INLOOP_METRICS


# The instability (and loss-shape score) a diverged seed counts with: the worst a finished run can
# score (instability at most SCALE, plus SCALE/3 for the seed term; loss_shape at most 2 x SCALE).
DIVERGED_INSTABILITY = 2 * SCALE


def named_objective_values(spec: "StudySpec", metrics: Mapping[str, float], instability: float,
                           loss_shape: float | None = None) -> dict[str, float]:
    """Each objective of the study (by name, before any weighting) for one run."""
    values = {}
    for name in spec.objectives:
        o = OBJECTIVES[name]
        if name == "loss_shape":
            if loss_shape is None:
                raise GanlabError("objective loss_shape: no loss-shape score was computed for the run")
            values[name] = loss_shape
        elif o.metric is None:
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


def seed_term(spread: float | None) -> float:
    """What the seed spread P (``ganlab.metrics.stability.seed_spread``) adds to a several-seed
    configuration's instability: ``SCALE * SEED_WEIGHT * P / sum(RUN_WEIGHTS)``, in the unit of
    the run terms (each run's own score is unchanged); 0 without it."""
    return 0.0 if spread is None else SCALE * SEED_WEIGHT * spread / sum(RUN_WEIGHTS.values())


def seed_mean(spec: "StudySpec", records: list[dict], seed_spread: float | None = None
              ) -> tuple[dict[str, list[float]], dict[str, float]]:
    """A several-seed trial's objectives: per objective the value of each seed, and their mean.

    A quality objective is the mean over the seeds that finished; a stability objective the
    mean over all seeds, a diverged seed counting as :data:`DIVERGED_INSTABILITY` (so that a
    configuration that diverges on some seeds is never the calmer for it). The instability
    objective adds the seed term (:func:`seed_term`) of the seeds' spread, ``seed_spread``; each
    seed's own value (the first dict) is its run's score, as a confirmation records it."""
    per_seed: dict[str, list[float]] = {}
    for name in spec.objectives:
        values = []
        for r in records:
            if "objectives" in r:
                values.append(float(r["objectives"][name]))
            elif OBJECTIVES[name].metric is None:
                values.append(DIVERGED_INSTABILITY)
        per_seed[name] = values
    means = {n: float(sum(v) / len(v)) for n, v in per_seed.items()}
    if "instability" in means:
        means["instability"] += seed_term(seed_spread)
    return per_seed, means


def like_l1_control(shares: list[float], quality_effect=None) -> str | None:
    """A sentence when a configuration cannot be told from the L1-only control, else None.

    ``shares``: the median ``G/adv_grad_share`` of each of its runs (the share of G's gradient
    from the adversarial term, :func:`ganlab.metrics.stability.adversarial_share`); reported as
    a continuous number, never labelled at a threshold. ``quality_effect``: its paired effect
    on the quality objective against the control (``ganlab.study.evidence.paired_effect``), with
    ``verdict`` and ``text()``. A configuration is indistinguishable from the control when that
    comparison finds no detectable difference (an interval that contains 0): whatever share of
    G's gradient the adversarial term had, the images did not show it."""
    import math

    finite = [s for s in shares if s is not None and math.isfinite(s)]
    share = f"median share of G's gradient from the adversarial term {sum(finite) / len(finite):.2f}" if finite else None
    if quality_effect is None or getattr(quality_effect, "n", 0) < 2:
        return None
    low, high = getattr(quality_effect, "low", math.nan), getattr(quality_effect, "high", math.nan)
    if not (math.isfinite(low) and math.isfinite(high)) or not low <= 0.0 <= high:
        return None
    return ("indistinguishable from the L1-only control in image quality (" + quality_effect.text() + ")"
            + (f"; {share}" if share else ""))


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
