"""How stable a run is, computed from its logged series (``stats.jsonl``).

The default score, ``instability`` (:data:`FORMULA`, also in ``ganlab eval --help`` and
docs/metrics.md), reads what a user cares about: the *quality* of the images over the run --
how much of its progress the run gave back between its best evaluation and its last, and how
much its validation curve zig-zagged -- and, for a configuration trained with several seeds,
how far apart the seeds' final quality lies. It reads no loss, so it is the same for every loss
type with the same quality trajectory, and it has no threshold anywhere: a continuous function
of the validation curve.

The loss-shape terms (D winning outright, slow swings of the losses, gradient spikes) and the
degenerate-run test (the adversarial game never happened) are diagnostics beside it, and the
separately named ``loss_shape`` score for a study that wants to search on loss behaviour. They
depend only on the *shape* of each series, so a constant shift or a positive scale of any loss
leaves them unchanged. Series are read one value per update (``NAME#k``, see
:func:`ganlab.stats.per_update`). A term whose series was not logged is *unknown*, listed and
left out, never counted as 0.
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch

from ganlab.errors import UsageError
from ganlab.metrics.formula import FORMULA  # noqa: F401 - the formula in words, kept torch-free there
from ganlab.stats import UPDATE_SEP, per_update, read_series

# The default score: terms of one run, and the seed term of a configuration, in one unit (see FORMULA).
RUN_WEIGHTS = {"regression": 2.0, "volatility": 1.0}
SEED_WEIGHT = 1.0
WEIGHTS = {**RUN_WEIGHTS, "seed_spread": SEED_WEIGHT}
# The loss-shape score (the ``loss_shape`` objective).
LOSS_WEIGHTS = {"collapse": 2.0, "grad_spikes": 2.0, "oscillation": 1.0}
SCALE = 10.0  # the score of a run whose every term is at its worst
DEGENERATE = "no adversarial signal"

AUC_WIN = 0.99
WINDOW = 30
SPIKE_MADS = 6.0
SPIKE_RATIO = 2.0
SPIKE_HISTORY = 50
SPIKE_MIN_HISTORY = 10
SPIKE_SATURATION = 0.1
GAP_HISTORY = 50
QUALITY_TAGS = ("val/ab_swd", "val/swd", "val/color_hist", "val/ab_l1", "val/L1")
PAIRED_QUALITY_TAGS = ("val/swd", "val/color_hist", "val/ab_l1", "val/L1")
PROGRESS_FLOOR = 0.1  # the progress scale: improvement from the first evaluation + 10 % of its value
VOLATILITY_SATURATION = 0.5  # zig-zag per evaluation interval of half the progress scale saturates
CHANCE_AUC = 0.6
CHANCE_ADVANTAGE = 0.1
SHARE_MIN = 0.01
MIN_UPDATES = 50  # D updates the chance rule needs before it judges (D learns within a few dozen)
MIN_SAMPLES = 6  # logged values of G/adv_grad_share the gradient-share rule needs
MAD_SIGMA = 1.4826

Series = Mapping[str, Sequence[tuple[int, float]]]


# ---------------------------------------------------------------------------------------------
# What the step measures (torch; called at logging iterations only)
# ---------------------------------------------------------------------------------------------


def chance_loss(mode: str) -> float | None:
    """``loss_real + loss_fake`` of a D that cannot tell real from fake (outputs one constant):
    vanilla 2 ln 2 (BCE at probability 1/2), lsgan 0.5 (output 1/2), hinge 2 (any output in
    [-1, 1]), rpgan 2 ln 2 (softplus(0), logged as both halves); a Wasserstein critic has no
    chance level of its loss (None)."""
    return {"vanilla": 2.0 * math.log(2.0), "lsgan": 0.5, "hinge": 2.0, "rpgan": 2.0 * math.log(2.0)}.get(mode)


def separation_auc(d_real, d_fake):
    """P(D(real patch) > D(fake patch)) over all pairs of D's outputs (the Mann-Whitney AUC):
    0.5 when D cannot tell them apart, 1 when it separates them perfectly. Rank-based, so it
    means the same for every loss type and under any shift or scale of D's output. A device
    tensor; one sort."""
    r = d_real.detach().reshape(-1).float()
    f = d_fake.detach().reshape(-1).float()
    both = torch.cat((r, f))
    ranks = torch.empty_like(both)
    ranks[both.argsort()] = torch.arange(1, both.numel() + 1, device=both.device, dtype=both.dtype)
    nr, nf = r.numel(), f.numel()
    return (ranks[:nr].sum() - nr * (nr + 1) / 2) / (nr * nf)


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


@dataclass
class InstabilityReport:
    """One run: the default score (``score``, the ``instability`` objective) with its terms
    (``components``) and the unknown ones, the loss-shape score (``loss_shape``, its own
    objective) with every diagnostic term (``diagnostics``), the degenerate label (a diagnostic:
    it changes no score), and where the run diverged (if it did).

    ``quality_tag``, ``final`` and ``progress`` are the validation curve the score read, its last
    value and its progress scale: what :func:`configuration_instability` needs to add the seed
    term of several seeds."""

    score: float
    components: dict[str, float] = field(default_factory=dict)
    diverged: bool = False
    diverged_step: int | None = None
    diverged_tag: str | None = None
    steps: int = 0
    unknown: list[str] = field(default_factory=list)
    degenerate: str | None = None
    degenerate_reason: str | None = None
    base_score: float | None = None  # the score itself (kept for readers of older metrics.json)
    loss_shape: float = math.inf
    diagnostics: dict[str, float] = field(default_factory=dict)
    diagnostics_unknown: list[str] = field(default_factory=list)
    quality_tag: str | None = None
    final: float | None = None
    progress: float | None = None

    @property
    def missing(self) -> list[str]:
        return self.unknown

    @property
    def adv_grad_share(self) -> float | None:
        """The median share of G's gradient that came from the adversarial term (0: none, the
        L1-only control; 1: all); None where it was not measured."""
        return self.diagnostics.get("adv_grad_share")

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("score", "loss_shape", "base_score"):
            if isinstance(d[key], float) and math.isinf(d[key]):
                d[key] = "inf"
        d["missing"] = list(self.unknown)
        return d


# ---------------------------------------------------------------------------------------------
# Reading series
# ---------------------------------------------------------------------------------------------


def _values(series: Series, tag: str) -> tuple[np.ndarray, np.ndarray]:
    rows = series.get(tag) or []
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0)
    steps, vals = zip(*rows)
    return np.asarray(steps, np.int64), np.asarray(vals, np.float64)


def updates(series: Series, tag: str) -> np.ndarray:
    """``tag``'s values one per update, in order (``NAME#k`` rows expanded)."""
    return np.asarray([v for _, _, v in per_update(series, tag)], np.float64)  # type: ignore[arg-type]


def _update_keys(series: Series, tag: str) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
    rows = per_update(series, tag)  # type: ignore[arg-type]
    return [(s, k) for s, k, _ in rows], np.asarray([s for s, _, _ in rows], np.int64), np.asarray([v for _, _, v in rows])


def _joined_sum(series: Series, a: str, b: str) -> np.ndarray:
    """``a + b`` per update, on the updates both were logged at."""
    ka, _, va = _update_keys(series, a)
    kb, _, vb = _update_keys(series, b)
    index = {k: i for i, k in enumerate(kb)}
    return np.asarray([va[i] + vb[index[k]] for i, k in enumerate(ka) if k in index], np.float64)


# ---------------------------------------------------------------------------------------------
# Loss-shape terms (invariant to a shift or a positive scale of any series)
# ---------------------------------------------------------------------------------------------


def collapse_share(series: Series) -> float | None:
    """C: the share of D updates at which D separates real from fake almost perfectly
    (``D/auc >= 0.99``); None when D/auc was never logged."""
    return _collapse(updates(series, "D/auc"))


def _collapse(auc: np.ndarray) -> float | None:
    return float(np.mean(auc >= AUC_WIN)) if auc.size else None


def swing(x: np.ndarray, window: int = WINDOW) -> float | None:
    """The robust lag-1 autocorrelation of each non-overlapping window with its line removed,
    averaged over windows and clipped to [0, 1]: about 0 for batch-to-batch noise, near 1 for
    slow swings. Unchanged by ``a * x + b`` (a > 0). None for fewer than 8 values."""
    if x.size < 8:
        return None
    n_win = max(1, x.size // window)
    w = (x[: n_win * window] if x.size >= window else x).reshape(n_win, -1)
    t = np.arange(w.shape[1], dtype=np.float64) - (w.shape[1] - 1) / 2
    slope = (w * t).sum(axis=1, keepdims=True) / (t * t).sum()
    e = w - w.mean(axis=1, keepdims=True) - slope * t  # each window's least-squares line removed
    scale = np.median(np.abs(e - np.median(e, axis=1, keepdims=True)), axis=1)
    de = np.diff(e, axis=1)
    dscale = np.median(np.abs(de - np.median(de, axis=1, keepdims=True)), axis=1)
    flat = scale <= 1e-12 * (np.abs(w).max(axis=1) + 1e-300)  # nothing swings
    rho = 1.0 - 0.5 * (dscale / np.where(flat, 1.0, scale)) ** 2
    # Averaged before clipping at 0, so that batch noise (rho about 0 either way) averages out.
    return float(np.clip(np.mean(np.where(flat, 0.0, np.clip(rho, -1.0, 1.0))), 0.0, 1.0))


def oscillation(series: Series) -> float | None:
    """O: the swing of D's loss (real + fake) and of G's adversarial loss, averaged."""
    return _oscillation(_joined_sum(series, "D/loss_real", "D/loss_fake"), updates(series, "G/adv"))


def _oscillation(d_loss: np.ndarray, g_adv: np.ndarray) -> float | None:
    parts = [o for o in (swing(d_loss), swing(g_adv)) if o is not None]
    return float(np.mean(parts)) if parts else None


def spike_share(x: np.ndarray, mads: float = SPIKE_MADS, ratio: float = SPIKE_RATIO,
                history: int = SPIKE_HISTORY) -> float | None:
    """Share of values (from the ``SPIKE_MIN_HISTORY``-th on) above both median + ``mads`` robust
    standard deviations and ``ratio`` x the median of up to ``history`` values before it.
    Unchanged by a positive scale. None for too short a series."""
    if x.size <= SPIKE_MIN_HISTORY:
        return None
    med, mad = _running_median_mad(x, history)
    cur = x[SPIKE_MIN_HISTORY:]
    return float(np.mean((cur > med + mads * MAD_SIGMA * mad) & (cur > ratio * med)))


def _running_median_mad(x: np.ndarray, history: int) -> tuple[np.ndarray, np.ndarray]:
    """For t = SPIKE_MIN_HISTORY .. n-1: the median and the MAD of the up to ``history`` values
    before t (vectorised: a sliding window, and padded sorts for the first ``history``)."""
    first = np.arange(SPIKE_MIN_HISTORY, min(history, x.size))
    meds, devs = np.zeros(0), np.zeros(0)
    if first.size:
        cols = np.arange(first[-1])
        valid = cols[None, :] < first[:, None]
        grow = np.where(valid, x[cols][None, :], np.inf)
        lo, hi = (first - 1) // 2, first // 2
        rows = np.arange(first.size)

        def mid(a: np.ndarray) -> np.ndarray:
            a = np.sort(a, axis=1)
            return 0.5 * (a[rows, lo] + a[rows, hi])

        meds = mid(grow)
        devs = mid(np.where(valid, np.abs(grow - meds[:, None]), np.inf))
    if x.size > history:
        win = np.lib.stride_tricks.sliding_window_view(x[:-1], history)
        m = np.median(win, axis=1)
        meds = np.concatenate((meds, m))
        devs = np.concatenate((devs, np.median(np.abs(win - m[:, None]), axis=1)))
    return meds, devs


def grad_spikes(series: Series) -> float | None:
    """S: min(1, 10 x the mean spike share of the D and G gradient norms, per update)."""
    return _spikes(updates(series, "D/grad_norm"), updates(series, "G/grad_norm"))


def _spikes(*norms: np.ndarray) -> float | None:
    parts = [f for f in (spike_share(x) for x in norms) if f is not None]
    if not parts:
        return None
    return min(1.0, float(np.mean(parts)) / SPIKE_SATURATION)


def val_gap(series: Series) -> float | None:
    """G: the relative train-validation L1 gap at the last evaluation, clipped to [0, 1].

    Like with like: ``train/L1`` is the evaluation generator (eval mode, the moving average
    where kept) on training crops, measured with ``val/L1``. Runs that did not log it fall back
    on ``G/L1``, the training step's own loss (G in train mode, with dropout)."""
    s_val, v_val = _values(series, "val/L1")
    s_tl, v_tl = _values(series, "train/L1")
    if s_val.size and s_tl.size and s_tl[-1] == s_val[-1] and v_tl[-1] > 0:
        return float(np.clip(v_val[-1] / v_tl[-1] - 1.0, 0.0, 1.0))
    _, s_tr, v_tr = _update_keys(series, "G/L1")
    if s_val.size == 0 or s_tr.size == 0:
        return None
    train = v_tr[s_tr <= s_val[-1]][-GAP_HISTORY:]
    if train.size == 0 or train.mean() <= 0:
        return None
    return float(np.clip(v_val[-1] / train.mean() - 1.0, 0.0, 1.0))


# ---------------------------------------------------------------------------------------------
# Quality trajectory and seeds
# ---------------------------------------------------------------------------------------------


def quality_tags(task: str | None) -> tuple[str, ...]:
    """The validation curves the trajectory terms look for, in order: each task's default quality
    objective first (``val/ab_swd`` for colourisation, ``val/swd`` for paired translation), then
    the other distribution distances, per-pixel fidelity last (it rewards grey images)."""
    return PAIRED_QUALITY_TAGS if task == "paired" else QUALITY_TAGS


def quality_curve(series: Series, tags: Sequence[str] = QUALITY_TAGS) -> tuple[str, np.ndarray] | None:
    """The in-loop validation curve the trajectory terms read: the first of ``tags`` that was
    logged (lower is better), as (tag, values by evaluation)."""
    for tag in tags:
        _, v = _values(series, tag)
        v = v[np.isfinite(v)]
        if v.size:
            return tag, v
    return None


def progress_scale(q: np.ndarray) -> float:
    """The unit the trajectory terms are measured in: how far the curve improved from its first
    evaluation to its best, plus 10 % of its first value,
    ``(q_first - q_best) + PROGRESS_FLOOR * |q_first|``.

    A run's ups and downs are judged against what it achieved. A curve that went nowhere (flat,
    at any level) is judged against a tenth of its level, so the same relative wobble costs it
    several times what it costs a curve that improved; a curve made uniformly k times worse
    scores the same (nothing is gained by being worse)."""
    return float(q[0] - q.min()) + PROGRESS_FLOOR * abs(float(q[0]))


def _relative(x: float, scale: float) -> float:
    if scale > 0:
        return x / scale
    return 0.0 if x <= 0 else math.inf  # a curve at exactly 0 throughout that then moved


def regression(q: np.ndarray) -> float | None:
    """R: the share of its progress the run gave back between its best evaluation and its last,
    ``(q_last - q_best) / progress_scale``, clipped to [0, 1]."""
    if q.size < 2:
        return None
    return float(np.clip(_relative(float(q[-1] - q.min()), progress_scale(q)), 0.0, 1.0))


def volatility(q: np.ndarray) -> float | None:
    """V: the curve's movement beyond its net change, per evaluation interval, in units of its
    progress scale; ``VOLATILITY_SATURATION`` (half the scale per interval) counts as 1."""
    if q.size < 3:
        return None
    excess = max(0.0, float(np.abs(np.diff(q)).sum() - abs(q[-1] - q[0])))
    per_interval = _relative(excess, progress_scale(q)) / (q.size - 1)
    return float(min(1.0, per_interval / VOLATILITY_SATURATION))


def seed_spread(finals: Iterable[float], scales: Iterable[float]) -> float | None:
    """P, for a configuration trained with several seeds: the sample standard deviation of the
    seeds' final quality (the last value of each run's validation curve) in units of their mean
    progress scale (:func:`progress_scale`), clipped to [0, 1]. None for fewer than two finite
    values. In the same unit as R and V, so the three add up."""
    pairs = [(f, s) for f, s in zip(finals, scales) if math.isfinite(f) and math.isfinite(s)]
    if len(pairs) < 2:
        return None
    x = np.asarray([f for f, _ in pairs], np.float64)
    unit = float(np.mean([s for _, s in pairs]))
    return float(np.clip(_relative(float(x.std(ddof=1)), unit), 0.0, 1.0))


def configuration_instability(reports: Sequence[InstabilityReport]) -> tuple[float, float | None]:
    """The instability of a configuration trained with several seeds, and its seed term:
    ``(mean of the runs' scores + SCALE * SEED_WEIGHT * P / sum(RUN_WEIGHTS), P)``.

    Each run keeps its own score (the same number in a search and in a confirmation); the seed
    term is added on top, in the unit of the run terms, never rescaling them. One report: its
    score and None. A diverged run (score inf) makes the mean inf; a study counts a diverged
    seed with its own worst value instead (``ganlab.study.objective.DIVERGED_INSTABILITY``)."""
    if not reports:
        raise ValueError("configuration_instability needs at least one run")
    mean = float(np.mean([r.score for r in reports]))
    tags = {r.quality_tag for r in reports}
    p = None
    if len(reports) > 1 and len(tags) == 1:
        p = seed_spread([r.final if r.final is not None else math.nan for r in reports],
                        [r.progress if r.progress is not None else math.nan for r in reports])
    return (mean + (SCALE * SEED_WEIGHT * p / sum(RUN_WEIGHTS.values()) if p is not None else 0.0)), p


# ---------------------------------------------------------------------------------------------
# Degenerate runs
# ---------------------------------------------------------------------------------------------


def _thirds(x: np.ndarray) -> list[np.ndarray]:
    return [p for p in np.array_split(x, 3) if p.size] if x.size >= 3 else [x]


def degenerate_run(series: Series) -> tuple[str | None, str | None]:
    """(``"no adversarial signal"``, why) when the adversarial game did not happen, else
    (None, None). See :data:`FORMULA` for the three rules."""
    if not (series.get("D/loss_real") or any(k.startswith("D/loss_real#") for k in series)):
        return DEGENERATE, "no discriminator update was logged"
    auc = updates(series, "D/auc")
    if auc.size >= MIN_UPDATES:
        chance = updates(series, "D/chance_loss")
        auc_means = [float(p.mean()) for p in _thirds(auc)]
        at_chance = max(auc_means) <= CHANCE_AUC
        why = f"D/auc stayed at chance (mean {', '.join(f'{m:.2f}' for m in auc_means)} by thirds of the run"
        if at_chance and chance.size:
            level = float(np.median(chance))  # one number per run: the loss type's chance level
            loss = _joined_sum(series, "D/loss_real", "D/loss_fake")
            if loss.size and level > 0:
                adv_means = [float(p.mean()) for p in _thirds((level - loss) / level)]
                at_chance = max(adv_means) <= CHANCE_ADVANTAGE
                why += f"; its loss {', '.join(f'{100 * m:.0f}' for m in adv_means)} % below the chance level {level:.3g}"
        if at_chance:
            return DEGENERATE, why + ")"
    share = updates(series, "G/adv_grad_share")
    if share.size >= MIN_SAMPLES and float(np.median(share)) < SHARE_MIN:
        return DEGENERATE, (f"the adversarial term's share of G's gradient was negligible "
                            f"(median G/adv_grad_share {float(np.median(share)):.2g} < {SHARE_MIN})")
    return None, None


# ---------------------------------------------------------------------------------------------
# The score
# ---------------------------------------------------------------------------------------------


def first_divergence(series: Series) -> tuple[int, str] | None:
    """(step, tag) of the first NaN or Inf in any series, or None."""
    first: tuple[int, str] | None = None
    for tag, rows in series.items():
        for step, value in rows:
            if not math.isfinite(value):
                if first is None or step < first[0]:
                    first = (int(step), tag.split("#")[0].removesuffix("@max"))
                break
    return first


def terms(series: Series, tags: Sequence[str] = QUALITY_TAGS) -> dict[str, float | None]:
    """The run terms of the default score (:data:`RUN_WEIGHTS`); None where unknown."""
    curve = quality_curve(series, tags)
    q = curve[1] if curve else np.zeros(0)
    return {"regression": regression(q), "volatility": volatility(q)}


def loss_terms(series: Series) -> dict[str, float | None]:
    """The loss-shape terms (:data:`LOSS_WEIGHTS`); None where their series was not logged."""
    return {"collapse": collapse_share(series), "oscillation": oscillation(series), "grad_spikes": grad_spikes(series)}


def adversarial_share(series: Series) -> float | None:
    """The median of ``G/adv_grad_share`` over the run: the share of the gradient on G's output
    that came from the adversarial term, |g_adv| / (|g_adv| + |g_l1|). A continuous reading of
    how much the adversarial game reached G (0 for the L1-only control); None where not measured."""
    return _median(updates(series, "G/adv_grad_share"))


def combine(values: Mapping[str, float | None], weights: Mapping[str, float] = RUN_WEIGHTS) -> float:
    """SCALE x the weighted mean of the known terms; SCALE (the worst) when none is known."""
    known = {k: v for k, v in values.items() if v is not None}
    if not known:
        return SCALE
    return SCALE * sum(weights[k] * v for k, v in known.items()) / sum(weights[k] for k in known)


def loss_shape_score(values: Mapping[str, float | None], degenerate: bool) -> float:
    """The ``loss_shape`` objective: SCALE x the weighted mean of the known loss-shape terms, plus
    SCALE when the run is degenerate (so that a D that learned nothing, whose losses are the
    calmest of all, is never ranked calmer than one that learned)."""
    return combine(values, LOSS_WEIGHTS) + (SCALE if degenerate else 0.0)


def instability_score(series: Series, tags: Sequence[str] = QUALITY_TAGS) -> InstabilityReport:
    """The stability of one run from its logged series ``{tag: [(step, value), ...]}``: the
    default score, the loss-shape score and every diagnostic (:class:`InstabilityReport`).
    ``tags``: the validation curves to read, the first logged one (:func:`quality_tags`)."""
    steps = {s for rows in series.values() for s, _ in rows}
    div = first_divergence(series)
    if div is not None:
        return InstabilityReport(math.inf, {}, True, div[0], div[1], len(steps), [], base_score=math.inf)
    values = terms(series, tags)
    unknown = [k for k, v in values.items() if v is None]
    comps = {k: float(v) for k, v in values.items() if v is not None}
    score = combine(values)
    label, why = degenerate_run(series)
    loss = loss_terms(series)
    diag: dict[str, float | None] = {**loss, "val_gap": val_gap(series), "adv_grad_share": adversarial_share(series),
                                     "auc": _median(updates(series, "D/auc"))}
    curve = quality_curve(series, tags)
    q = curve[1] if curve else None
    return InstabilityReport(
        score, comps, False, None, None, len(steps), unknown, label, why, score,
        loss_shape=loss_shape_score(loss, label is not None),
        diagnostics={k: float(v) for k, v in diag.items() if v is not None and math.isfinite(v)},
        diagnostics_unknown=[k for k, v in diag.items() if v is None],
        quality_tag=curve[0] if curve else None,
        final=float(q[-1]) if q is not None else None,
        progress=progress_scale(q) if q is not None else None,
    )


def instability_from_run(run_dir: str | os.PathLike) -> InstabilityReport:
    """Read ``RUN_DIR/stats.jsonl`` and score it."""
    path = Path(run_dir) / "stats.jsonl"
    if not path.is_file():
        raise UsageError(f"{run_dir}: no stats.jsonl; give a run folder written by 'ganlab train'")
    task = None
    try:
        task = json.loads((Path(run_dir) / "config.json").read_text()).get("task")
    except (OSError, ValueError, AttributeError):  # the series alone still give the score
        pass
    return instability_score(read_series(path), quality_tags(task))


def degenerate_from_run(run_dir: str | os.PathLike) -> str | None:
    """The degenerate label of a run folder (None when it is not, or cannot be read)."""
    try:
        return degenerate_run(read_series(Path(run_dir) / "stats.jsonl"))[0]
    except Exception:  # a label is best effort: it never stops the run from saying it finished
        return None


# ---------------------------------------------------------------------------------------------
# Windowed terms for TensorBoard
# ---------------------------------------------------------------------------------------------


def _median(x: np.ndarray) -> float | None:
    return float(np.median(x)) if x.size else None


def _window_terms(x: Mapping[str, np.ndarray]) -> dict[str, float]:
    n = min(x["D/loss_real"].size, x["D/loss_fake"].size)
    d_loss = x["D/loss_real"][x["D/loss_real"].size - n:] + x["D/loss_fake"][x["D/loss_fake"].size - n:]
    out = {
        "collapse": _collapse(x["D/auc"]),
        "oscillation": _oscillation(d_loss, x["G/adv"]),
        "grad_spikes": _spikes(x["D/grad_norm"], x["G/grad_norm"]),
        "auc": _median(x["D/auc"]),
        "adv_grad_share": _median(x["G/adv_grad_share"]),
    }
    return {k: v for k, v in out.items() if v is not None and math.isfinite(v)}


WINDOW_TAGS = ("D/loss_real", "D/loss_fake", "G/adv", "D/grad_norm", "G/grad_norm", "D/auc", "G/adv_grad_share")


def window_terms(series: Series, window: int = 200) -> dict[str, float]:
    """The loss-shape terms over the last ``window`` updates of each series -- collapse,
    oscillation, grad_spikes -- and the medians of D's AUC and of the adversarial gradient
    share (``auc``, ``adv_grad_share``); the ones that are known. What
    :class:`StabilityWindow` reports, for a whole series at once."""
    return _window_terms({t: updates(series, t)[-window:] for t in WINDOW_TAGS})


class StabilityWindow:
    """:func:`window_terms` kept up to date from the rows of each log flush, so that the
    training loop can show them as ``stability/...`` scalars::

        window = StabilityWindow()
        ...
        rows = bus.flush()
        for name, value in window.update(rows).items():
            writer.add_scalar(f"stability/{name}", value, rows[-1][0])

    It keeps the last ``window`` values of each series it reads (one per update) and nothing
    else; a few milliseconds a flush.
    """

    def __init__(self, window: int = 200):
        self.window = window
        self._x: dict[str, deque[float]] = {t: deque(maxlen=window) for t in WINDOW_TAGS}

    def update(self, rows: Iterable[tuple[int, Mapping[str, float]]]) -> dict[str, float]:
        for _, row in rows:
            for tag, buf in self._x.items():
                if f"{tag}{UPDATE_SEP}0" in row:
                    k = 0
                    while f"{tag}{UPDATE_SEP}{k}" in row:
                        buf.append(row[f"{tag}{UPDATE_SEP}{k}"])
                        k += 1
                elif tag in row:
                    buf.append(row[tag])
        return self.terms()

    def terms(self) -> dict[str, float]:
        return _window_terms({t: np.asarray(b, np.float64) for t, b in self._x.items()})
