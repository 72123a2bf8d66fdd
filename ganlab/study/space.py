"""The search space of a study: the tricks switched on, the parameters of the tricks that are
on, and the base hyperparameters that are live under those tricks (define-by-run).

Only live parameters are searched. A trick's parameter is drawn only where its declared
``active_if`` conditions hold (Optuna's define-by-run: ``soft-labels.fake_low`` exists only in
trials with ``soft-labels.two_sided`` true). A base setting that a trick of the drawn stack
sets itself (``lr`` under ``wgan-gp`` or ``ttur``, ``gan_mode`` under ``wgan-gp``) is not
drawn, so it is not in ``trial.params`` and no importance is ever computed on it. Whether a
setting is live is asked of the tricks' build hooks (:func:`ganlab.train.build.overridden_setting`), never of a
list of trick names, so a third-party trick is handled the same way.
"""

from __future__ import annotations

from typing import Any

from ganlab.config import TrainConfig, coerce_fields
from ganlab.study.spec import NONE, Range, StudySpec
from ganlab.train.build import overridden_setting, overridden_trick_param
from ganlab.trick._registry import registry
from ganlab.trick import Trick
from ganlab.trick.params import coerce_param, param_infos

__all__ = ["range_values", "sample_trial", "study_base_config"]


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


def range_values(r: Range) -> tuple:
    """The values a liveness check tries for a range: every choice, or its two ends."""
    return tuple(r.choices) if r.choices is not None else (r.low, r.high)


def study_base_config(spec: StudySpec) -> TrainConfig:
    """The configuration the study's ``[train]`` table gives, before any parameter is drawn."""
    return TrainConfig.from_dict(dict(spec.train), f"study {spec.name} [train]")


def _typed(key: str, value: Any) -> Any:
    return coerce_fields(TrainConfig, {key: value}, "search")[key]


def _build(cls: type[Trick], values: dict[str, Any]) -> Trick:
    return cls(cls.parse_params(values))


def _trick_param_is_dead(cfg: TrainConfig, cls: type[Trick], values: dict[str, Any], key: str, r: Range,
                         others: list[Trick]) -> bool:
    variants = [_build(cls, {**values, key: v}) for v in range_values(r)]
    return bool(overridden_trick_param(cfg, variants, others))


def _current(trick: str, infos, values: dict[str, Any]) -> dict[str, Any]:
    """Every parameter's value by key: the drawn or fixed one, else the default (typed)."""
    out = {}
    for info in infos:
        v = values.get(info.key, values.get(info.name, info.default))
        out[info.key] = v if type(v) is info.type else coerce_param(trick, info, v)
    return out


def sample_trial(spec: StudySpec, trial) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """Draw a trial's trick stack, its tricks' parameters (named ``<trick>.<param>``, drawn
    only for the tricks switched on), then the base settings that are live under that stack.

    A trick's parameter that another trick of the stack overrides through a build hook (the
    learning rate of ``wgan-gp`` under ``ttur``, its ``critic_norm`` under ``spectral-norm``)
    is not drawn either, nor one whose ``active_if`` conditions the trick's other values do
    not meet (``soft-labels.fake_low`` with ``two_sided`` false); the trick keeps its fixed or
    default value."""
    known = registry()
    on = list(spec.always)
    for name in spec.optional:
        if trial.suggest_categorical(f"trick:{name}", [False, True]):
            on.append(name)
    for gname, members in spec.groups:
        choice = trial.suggest_categorical(f"group:{gname}", list(members))
        if choice != NONE:
            on.append(choice)
    names = list(dict.fromkeys(on))
    overrides = {t: dict(rs) for t, rs in spec.trick_ranges}
    fixed = {t: dict(ps) for t, ps in spec.trick_fixed}
    cfg = study_base_config(spec)
    # every trick at its fixed (else default) values; a drawn value replaces its entry
    values: dict[str, dict[str, Any]] = {n: dict(fixed.get(n, {})) for n in names}
    built: dict[str, Trick] = {n: _build(known[n], values[n]) for n in names}
    for name in names:
        others = [built[n] for n in names if n != name]
        infos = param_infos(known[name].Params)
        # Unconditional parameters first: a conditional one is drawn only where the values of
        # those it depends on (drawn, fixed or default) make it act.
        for info in sorted(infos, key=lambda i: bool(i.active_if)):
            if info.key in fixed.get(name, {}):
                continue
            if info.active_if and not info.is_active(_current(name, infos, values[name])):
                continue
            r = overrides.get(name, {}).get(info.key) or _declared_range(info)
            if r is None or _trick_param_is_dead(cfg, known[name], values[name], info.key, r, others):
                continue
            values[name][info.key] = _suggest(trial, f"{name}.{info.key}", r)
        built[name] = _build(known[name], values[name])
    stack = [built[n] for n in names]
    base: dict[str, Any] = {}
    for key, r in spec.search:
        if overridden_setting(cfg, key, [_typed(key, v) for v in range_values(r)], stack):
            continue  # the stack sets what this reaches itself: not drawn, not in trial.params
        base[key] = _suggest(trial, key, r)
        cfg = cfg.replace(**{key: _typed(key, base[key])})
    return base, [(n, values[n]) for n in names]
