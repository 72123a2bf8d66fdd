"""The instability score of a run, computed from its logged series (``stats.jsonl``).

The formula is :data:`FORMULA` (also in ``ganlab eval --help`` and docs/metrics.md). Each
term is in [0, 1]; a term whose series was not logged counts 0 and is listed as missing.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ganlab.errors import UsageError

FORMULA = """\
I = 2*C + O + 2*S + G        (0 = perfectly calm; at most 6)
I = inf                      when any logged value is NaN or Inf (the run diverged)

C  collapse: the share of adversarial steps at which D separates real from fake almost
   perfectly -- D/acc_real >= 0.98 and D/acc_fake >= 0.98 -- or its loss is near 0:
   D/loss_real + D/loss_fake < 0.01 (the loss test only for losses that are never negative,
   i.e. not for a Wasserstein critic).
O  oscillation: for x in {D/loss_real + D/loss_fake, G/adv}, cut the series into windows of
   20 logged steps and take the coefficient of variation of each window,
   min(1, std_w(x) / (mean_w(|x|) + 0.05)); O is the mean over windows and over both series.
   (The 0.05 keeps losses that sit near 0 from inflating the ratio.)
S  gradient spikes: a step spikes when D/grad_norm (or G/grad_norm) exceeds 5x the median of
   the 50 logged steps before it; with f the spike share averaged over both series,
   S = min(1, 10*f) (a spike every 10th step or more saturates).
G  generalisation gap: G = clip(val/L1 / mean(G/L1 over the 50 steps up to that eval) - 1, 0, 1),
   the relative train-validation L1 gap at the last evaluation.
"""

WEIGHTS = {"collapse": 2.0, "oscillation": 1.0, "grad_spikes": 2.0, "val_gap": 1.0}
ACC_THRESHOLD = 0.98
LOSS_EPS = 0.01
WINDOW = 20
CV_EPS = 0.05
SPIKE_FACTOR = 5.0
SPIKE_HISTORY = 50
SPIKE_SATURATION = 0.1
GAP_HISTORY = 50

Series = Mapping[str, Sequence[tuple[int, float]]]


@dataclass
class InstabilityReport:
    """The score, its terms, and where the run diverged (if it did)."""

    score: float
    components: dict[str, float] = field(default_factory=dict)
    diverged: bool = False
    diverged_step: int | None = None
    diverged_tag: str | None = None
    steps: int = 0
    missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["score"] = "inf" if math.isinf(self.score) else self.score
        return d


def _values(series: Series, tag: str) -> tuple[np.ndarray, np.ndarray]:
    rows = series.get(tag) or []
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0)
    steps, vals = zip(*rows)
    return np.asarray(steps, np.int64), np.asarray(vals, np.float64)


def _joined(series: Series, a: str, b: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values of two tags on the steps both were logged at."""
    sa, va = _values(series, a)
    sb, vb = _values(series, b)
    common, ia, ib = np.intersect1d(sa, sb, return_indices=True)
    return common, va[ia], vb[ib]


def collapse_share(series: Series) -> float | None:
    """C: the share of adversarial steps where D wins outright (None if D was never logged)."""
    s_acc, acc_r, acc_f = _joined(series, "D/acc_real", "D/acc_fake")
    s_loss, l_r, l_f = _joined(series, "D/loss_real", "D/loss_fake")
    steps = np.union1d(s_acc, s_loss)
    if steps.size == 0:
        return None
    collapsed = set(s_acc[(acc_r >= ACC_THRESHOLD) & (acc_f >= ACC_THRESHOLD)].tolist())
    loss = l_r + l_f
    if loss.size and (l_r >= 0).all() and (l_f >= 0).all():
        collapsed |= set(s_loss[loss < LOSS_EPS].tolist())
    return len(collapsed) / steps.size


def windowed_cv(x: np.ndarray, window: int = WINDOW, eps: float = CV_EPS) -> float | None:
    """Mean over non-overlapping windows of min(1, std/(mean|x| + eps)); None for < 3 values."""
    if x.size < 3:
        return None
    n_win = max(1, x.size // window)
    vals = []
    for w in np.array_split(x[: n_win * window] if x.size >= window else x, n_win):
        vals.append(min(1.0, float(w.std() / (np.abs(w).mean() + eps))))
    return float(np.mean(vals))


def oscillation(series: Series) -> float | None:
    """O: the windowed coefficient of variation of the adversarial losses."""
    parts = []
    _, l_r, l_f = _joined(series, "D/loss_real", "D/loss_fake")
    for x in (l_r + l_f, _values(series, "G/adv")[1]):
        cv = windowed_cv(x)
        if cv is not None:
            parts.append(cv)
    return float(np.mean(parts)) if parts else None


def spike_share(x: np.ndarray, factor: float = SPIKE_FACTOR, history: int = SPIKE_HISTORY) -> float | None:
    """Share of steps whose value exceeds ``factor`` x the median of up to ``history`` steps before it."""
    if x.size < 6:
        return None
    refs = [np.median(x[:t]) for t in range(5, min(history, x.size))]
    if x.size > history:
        refs.extend(np.median(np.lib.stride_tricks.sliding_window_view(x[:-1], history), axis=1))
    ref = np.asarray(refs)
    cur = x[5:]
    return float(np.mean((cur > factor * ref) & (cur > 0)))


def grad_spikes(series: Series) -> float | None:
    """S: min(1, 10 x the mean spike share of the D and G gradient norms)."""
    parts = [f for f in (spike_share(_values(series, t)[1]) for t in ("D/grad_norm", "G/grad_norm")) if f is not None]
    if not parts:
        return None
    return min(1.0, float(np.mean(parts)) / SPIKE_SATURATION)


def val_gap(series: Series) -> float | None:
    """G: the relative train-validation L1 gap at the last evaluation, clipped to [0, 1]."""
    s_val, v_val = _values(series, "val/L1")
    s_tr, v_tr = _values(series, "G/L1")
    if s_val.size == 0 or s_tr.size == 0:
        return None
    last = s_val[-1]
    train = v_tr[s_tr <= last][-GAP_HISTORY:]
    if train.size == 0 or train.mean() <= 0:
        return None
    return float(np.clip(v_val[-1] / train.mean() - 1.0, 0.0, 1.0))


def first_divergence(series: Series) -> tuple[int, str] | None:
    """(step, tag) of the first NaN or Inf in any series, or None."""
    first: tuple[int, str] | None = None
    for tag, rows in series.items():
        for step, value in rows:
            if not math.isfinite(value):
                if first is None or step < first[0]:
                    first = (int(step), tag)
                break
    return first


def instability_score(series: Series) -> InstabilityReport:
    """The instability score of a run's logged series ``{tag: [(step, value), ...]}``."""
    steps = {s for rows in series.values() for s, _ in rows}
    div = first_divergence(series)
    if div is not None:
        return InstabilityReport(math.inf, {}, True, div[0], div[1], len(steps), [])
    terms = {
        "collapse": collapse_share(series),
        "oscillation": oscillation(series),
        "grad_spikes": grad_spikes(series),
        "val_gap": val_gap(series),
    }
    missing = [k for k, v in terms.items() if v is None]
    comps = {k: (0.0 if v is None else float(v)) for k, v in terms.items()}
    score = sum(WEIGHTS[k] * v for k, v in comps.items())
    return InstabilityReport(score, comps, False, None, None, len(steps), missing)


def instability_from_run(run_dir: str | os.PathLike) -> InstabilityReport:
    """Read ``RUN_DIR/stats.jsonl`` and score it."""
    from ganlab.stats import read_series

    path = Path(run_dir) / "stats.jsonl"
    if not path.is_file():
        raise UsageError(f"{run_dir}: no stats.jsonl; give a run folder written by 'ganlab train'")
    return instability_score(read_series(path))
