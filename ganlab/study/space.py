"""The search space of a study: the base hyperparameters it searches, the tricks switched on,
and the parameters of the tricks that are on (define-by-run)."""

from __future__ import annotations

from typing import Any

from ganlab.study.spec import NONE, Range, StudySpec
from ganlab.trick import param_infos, registry

__all__ = ["sample_trial"]


def _suggest(trial, name: str, r: Range):
    if r.choices is not None:
        return trial.suggest_categorical(name, list(r.choices))
    if r.int:
        return trial.suggest_int(name, int(r.low), int(r.high), log=r.log)
    return trial.suggest_float(name, float(r.low), float(r.high), log=r.log)


def _declared_range(info) -> Range | None:
    space = info.search_space()
    if space is None:
        return None
    if space[0] == "categorical":
        return Range(choices=tuple(space[1]))
    return Range(low=space[1], high=space[2], log=space[3], int=space[0] == "int")


def sample_trial(spec: StudySpec, trial) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """Draw a trial's base settings and trick stack. Trick parameters are only drawn for the
    tricks switched on (define-by-run), named ``<trick>.<param>``."""
    known = registry()
    base = {k: _suggest(trial, k, r) for k, r in spec.search}
    on = list(spec.always)
    for name in spec.optional:
        if trial.suggest_categorical(f"trick:{name}", [False, True]):
            on.append(name)
    for gname, members in spec.groups:
        choice = trial.suggest_categorical(f"group:{gname}", list(members))
        if choice != NONE:
            on.append(choice)
    overrides = {t: dict(rs) for t, rs in spec.trick_ranges}
    fixed = {t: dict(ps) for t, ps in spec.trick_fixed}
    tricks = []
    for name in dict.fromkeys(on):
        values: dict[str, Any] = dict(fixed.get(name, {}))
        for info in param_infos(known[name].Params):
            if info.key in values:
                continue
            r = overrides.get(name, {}).get(info.key) or _declared_range(info)
            if r is not None:
                values[info.key] = _suggest(trial, f"{name}.{info.key}", r)
        tricks.append((name, values))
    return base, tricks
