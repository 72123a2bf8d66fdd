"""A study definition (TOML, see ``studies/``): its schema, validated with one line per
mistake, and the built-in definitions."""

from __future__ import annotations

import dataclasses
import hashlib
import tomllib
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from ganlab.coerce import BadValue, coerce, unwrap_optional
from ganlab.config import TrainConfig, check_run_name, coerce_fields, flag_name
from ganlab.errors import UsageError
from ganlab.study.objective import INLOOP_METRICS, OBJECTIVES, PRUNE_PROXY, WEIGHTED, default_objectives, measured_in_loop
from ganlab.train.build import build_stack, overridden_setting, overridden_trick_param
from ganlab.trick._registry import registry
from ganlab.trick.params import param_infos

__all__ = ["KEEP_CHOICES", "NONE", "PRUNERS", "Range", "SAMPLERS", "StudySpec", "builtin_studies", "load_study_file", "parse_study",
           "study_key"]


SAMPLERS = ("nsga2", "tpe", "random")


PRUNERS = ("none", "median", "successive-halving", "hyperband")


NONE = "none"


KEEP_CHOICES = ("final", "all")  # [study].keep_checkpoints


@dataclass(frozen=True)
class Range:
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple | None = None
    int: bool = False


def study_key(default: Any, help: str, *, choices: tuple | None = None, low: int | None = None,
              high: int | None = None, why: str = "") -> Any:
    """A key of a definition's ``[study]`` table, declared once: its type (the annotation), its
    default, what it means, and the choices or bounds :func:`parse_study` checks (``why`` ends
    the refusal of a value below ``low``)."""
    return dataclasses.field(default=default, metadata={"study": {"help": help, "choices": choices, "low": low,
                                                                  "high": high, "why": why}})


@dataclass(frozen=True)
class StudySpec:
    name: str
    objectives: tuple[str, ...]
    weights: tuple[tuple[str, float], ...] = ()
    sampler: str = study_key("nsga2", "Optuna's sampler", choices=SAMPLERS)
    pruner: str = study_key("none", "Optuna's pruner, or ganlab's median rule", choices=PRUNERS)
    prune_on: str | None = study_key(None, "the in-loop metric pruned on (default: the objective where it is measured "
                                           "in the loop, else PRUNE_PROXY)")
    population_size: int = study_key(8, "NSGA-II's population", low=2, why=" (NSGA-II breeds pairs)")
    steps: int = study_key(200, "training steps of each run", low=1)
    eval_every: int = study_key(50, "steps between in-loop evaluations", low=1)
    seed: int | None = study_key(0, "the sampler's seed and the runs' first seed", low=0, high=2**32 - 1)
    heartbeat_interval: int = study_key(30, "seconds between an RDB trial's heartbeats", low=1)
    grace_period: int = study_key(90, "seconds without a heartbeat before a trial is failed", low=1)
    max_retry: int = study_key(1, "retries of a failed trial", low=0)
    seeds: int = study_key(1, "runs per trial, differing only in --seed; the trial's objectives are their mean", low=1)
    trials: int | None = study_key(None, "the study-wide budget, counted over all workers (none: per worker only)", low=1)
    keep_checkpoints: str = study_key("final", "final: a finished trial keeps its final and best generators only",
                                      choices=KEEP_CHOICES)
    prune_warmup: int | None = study_key(None, "no trial is pruned before this step (none: the first evaluation)", low=0)
    prune_patience: int = study_key(1, "ganlab's median rule: prune after this many evaluations in a row below the "
                                       "median", low=1)
    control: bool = study_key(True, "confirm against the L1-only control (gan_mode none) as well as the baseline")
    train: tuple[tuple[str, Any], ...] = ()
    search: tuple[tuple[str, Range], ...] = ()
    optional: tuple[str, ...] = ()
    always: tuple[str, ...] = ()
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    trick_ranges: tuple[tuple[str, tuple[tuple[str, Range], ...]], ...] = ()
    trick_fixed: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    # Fixed arms ([arms.NAME]): each a configuration the confirmation trains against the baseline,
    # as (label, settings, tricks); a definition with arms searches nothing.
    arms: tuple[tuple[str, tuple[tuple[str, Any], ...], tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]], ...] = ()
    source: str = ""

    @property
    def searches(self) -> bool:
        """Whether the definition searches (else it compares its fixed arms; the parser refuses both)."""
        return not self.arms

    @property
    def scalarised(self) -> bool:
        return len(self.objectives) == 1 or bool(self.weights)

    @property
    def directions(self) -> list[str]:
        if self.weights:
            return ["minimize"]
        return [OBJECTIVES[o].direction for o in self.objectives]

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]

    @property
    def pruning_target(self) -> tuple[str, bool]:
        """What the pruner watches, and whether it is the study's objective itself.

        The label is an objective's name, ``"weighted"`` (the weighted objective) or an in-loop
        metric key such as ``val/L1`` (a proxy). By default: the objective when the training loop
        measures it, else :data:`PRUNE_PROXY`; ``[study].prune_on`` overrides it."""
        single = len(self.objectives) == 1 and not self.weights
        if self.prune_on:
            p = self.prune_on
            if p == WEIGHTED:
                return WEIGHTED, True
            key = OBJECTIVES[p].metric if p in OBJECTIVES else p
            if single and key == OBJECTIVES[self.objectives[0]].metric:
                return self.objectives[0], True
            return key, False
        if self.weights:
            if all(measured_in_loop(o) for o, w in self.weights if w):
                return WEIGHTED, True
            return PRUNE_PROXY, False
        if single and measured_in_loop(self.objectives[0]):
            return self.objectives[0], True
        return PRUNE_PROXY, False

    @property
    def own_pruning(self) -> bool:
        """Whether ganlab's median rule prunes (:mod:`ganlab.study.pruning`): in a Pareto study, or
        on the mean of several seeds, where Optuna's pruners (one reported value per step of a
        single-objective trial) cannot."""
        return self.pruner == "median" and (not self.scalarised or self.seeds > 1)

    @property
    def warmup(self) -> int:
        return self.eval_every if self.prune_warmup is None else self.prune_warmup


def _check_prune_on(where: str, value: str, objectives, weights) -> None:
    ok = [*INLOOP_METRICS, *(o for o in OBJECTIVES if measured_in_loop(o))]
    if value == WEIGHTED:
        if not weights:
            raise _bad(where, "'study.prune_on' = \"weighted\" needs study.weights")
        outside = [o for o, w in weights.items() if w and not measured_in_loop(o)]
        if outside:
            raise _bad(where, f"'study.prune_on' = \"weighted\": {outside[0]} is not measured during training; "
                              f"prune on one of {', '.join(ok)}")
        return
    if value not in ok:
        why = " (not measured during training)" if value in OBJECTIVES else ""
        raise _bad(where, f"'study.prune_on' = {value!r}{why}: choose an in-loop metric: {', '.join(ok)}"
                          f"{', weighted' if weights else ''}")


_STUDY_FIELDS = {f.name: f for f in dataclasses.fields(StudySpec) if "study" in f.metadata}  # the simple keys
_STUDY_KEYS = {*_STUDY_FIELDS, "objectives", "weights"}
_WHAT = {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}


def _study_value(where: str, key: str, value: Any) -> Any:
    """A simple ``[study]`` key's value, typed and checked against its declaration."""
    f = _STUDY_FIELDS[key]
    typ = unwrap_optional(typing.get_type_hints(StudySpec)[key])[0]
    value = _expect(where, f"study.{key}", value, typ, _WHAT[typ])
    meta = f.metadata["study"]
    choices, low, high = meta["choices"], meta["low"], meta["high"]
    if choices is not None and value not in choices:
        raise _bad(where, f"'study.{key}' = {value!r}: choose {(' or ' if len(choices) == 2 else ', ').join(choices)}")
    if high is not None and low is not None and not low <= value <= high:
        raise _bad(where, f"'study.{key}' = {value}: must be in [{low}, {high}]")
    if low is not None and value < low:
        raise _bad(where, f"'study.{key}' = {value}: must be >= {low}{meta['why']}")
    return value


def _bad(where: str, msg: str) -> UsageError:
    return UsageError(f"{where}: {msg}")


def _expect(where: str, key: str, value, typ, what: str):
    """``value`` as ``typ`` (the one coercer; a table or list must be one), or one line saying
    what it should be."""
    if typ in (list, dict):
        if not isinstance(value, typ):
            raise _bad(where, f"'{key}' = {value!r} should be {what}")
        return value
    try:
        return coerce(value, typ)
    except BadValue:
        raise _bad(where, f"'{key}' = {value!r} should be {what}") from None


def _range(where: str, key: str, value) -> Range:
    if isinstance(value, list):
        value = {"choices": value}
    if not isinstance(value, Mapping):
        raise _bad(where, f"'{key}' should be a table like {{low = 1e-4, high = 1e-3, log = true}} or {{choices = [...]}}")
    unknown = set(value) - {"low", "high", "log", "choices", "int"}
    if unknown:
        raise _bad(where, f"'{key}': unknown key '{sorted(unknown)[0]}' (allowed: low, high, log, choices, int)")
    if "choices" in value:
        choices = _expect(where, f"{key}.choices", value["choices"], list, "a list")
        if not choices:
            raise _bad(where, f"'{key}.choices' is empty")
        return Range(choices=tuple(choices))
    if "low" not in value or "high" not in value:
        raise _bad(where, f"'{key}' needs low and high (or choices)")
    low = value["low"] if isinstance(value["low"], int) and not isinstance(value["low"], bool) else _expect(where, f"{key}.low", value["low"], float, "a number")
    high = value["high"] if isinstance(value["high"], int) and not isinstance(value["high"], bool) else _expect(where, f"{key}.high", value["high"], float, "a number")
    if low > high:
        raise _bad(where, f"'{key}': low {low} is above high {high}")
    log = _expect(where, f"{key}.log", value.get("log", False), bool, "true or false")
    if log and low <= 0:
        raise _bad(where, f"'{key}': a log range needs low > 0")
    is_int = value.get("int", isinstance(low, int) and isinstance(high, int) and not log)
    return Range(low=low, high=high, log=log, int=bool(is_int))


MAX_ENUMERATED = 2048  # an integer range up to this many values is checked value by value


def check_search_bounds(where: str, objectives: list, train: Mapping[str, Any], search: list[tuple[str, Range]]) -> None:
    """Refuse, one line each, what every trial would otherwise meet: an objective named twice,
    and a ``[search]`` range that reaches values the setting itself refuses (``lr = {low =
    -1e-3, ...}``: a negative learning rate drawn at some trial), or that holds no valid value
    at all (``size = {low = 33, high = 40}``: no multiple of 32).

    Each value is checked as ``ganlab train`` checks it, with the study's ``[train]`` settings
    and the defaults for the rest; only a refusal that names the searched setting counts
    (another setting's problem is reported where it is set). A float range is checked at both
    ends (every setting's bounds are intervals); an integer range value by value."""
    seen = set()
    for o in objectives:
        if o in seen:
            raise _bad(where, f"'study.objectives' names {o!r} twice; give each objective once")
        seen.add(o)
    base = dict(coerce_fields(TrainConfig, dict(train), f"{where} [train]"))

    def ends(r: Range) -> tuple:
        return r.choices if r.choices is not None else ((int(r.low), int(r.high)) if r.int else (r.low, r.high))

    def contexts(key: str) -> list[dict]:
        """The other searched settings at their ends (or choices): a value another draw makes
        valid (n_layers 5 with a searched size of 256 as well as 32) is not refused."""
        combos: list[dict] = [{}]
        for other, r in search:
            if other != key:
                combos = [{**c, other: v} for c in combos for v in ends(r)]
                if len(combos) > 64:
                    return [{}]
        return combos

    def refusal(key: str, value) -> str | None:
        first = None
        for context in contexts(key):
            values = dict(base)
            for k, v in {**context, key: value}.items():
                values.update(coerce_fields(TrainConfig, {k: v}, f"{where} [search]"))
            try:
                TrainConfig(**values).validate()
                return None
            except UsageError as exc:
                if not str(exc).startswith(flag_name(key) + " "):
                    return None  # another setting's problem, reported where it is set
                first = first or str(exc)
            except (TypeError, ValueError):
                return None
        return first

    for key, r in search:
        if r.choices is not None:
            for v in r.choices:
                if (why := refusal(key, v)) is not None:
                    raise _bad(where, f"'search.{key}' choice {v!r}: {why}")
            continue
        if r.int and float(r.high) - float(r.low) < MAX_ENUMERATED:
            values = list(range(int(r.low), int(r.high) + 1))
            bad = {v: why for v in values if (why := refusal(key, v)) is not None}
            if not bad:
                continue
            good = [v for v in values if v not in bad]
            first = next(iter(bad.values()))
            if not good:
                raise _bad(where, f"'search.{key}' = {{low = {r.low}, high = {r.high}}}: no value in the range is valid "
                                  f"({first})")
            shown = ", ".join(map(str, good[:8])) + (", ..." if len(good) > 8 else "")
            raise _bad(where, f"'search.{key}' = {{low = {r.low}, high = {r.high}}} reaches values a trial would refuse "
                              f"({first}); the valid ones are {shown}: narrow the range or give choices = [...]")
        for end, v in (("low", r.low), ("high", r.high)):
            if (why := refusal(key, int(v) if r.int else v)) is not None:
                raise _bad(where, f"'search.{key}' {end} = {v}: {why}; narrow the range to what the setting allows")


def parse_study(text: str, where: str, default_name: str) -> StudySpec:
    """Validate a study definition; unknown keys and wrong types are refused with their name."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _bad(where, f"not valid TOML ({exc})") from None
    unknown = set(data) - {"study", "train", "search", "tricks", "arms"}
    if unknown:
        raise _bad(where, f"unknown table '{sorted(unknown)[0]}' (allowed: study, train, search, tricks, arms)")
    study = _expect(where, "study", data.get("study", {}), dict, "a table")
    kwargs: dict[str, Any] = {}
    for key, value in study.items():
        k = key.replace("-", "_")
        if k not in _STUDY_KEYS | {"name"}:
            raise _bad(where, f"unknown key 'study.{key}'")
        kwargs[k] = value
    name = _expect(where, "study.name", kwargs.pop("name", default_name), str, "a string")
    train_task = data.get("train", {}).get("task") if isinstance(data.get("train"), dict) else None
    objectives = kwargs.pop("objectives", default_objectives(train_task))
    _expect(where, "study.objectives", objectives, list, "a list of objective names")
    if not 1 <= len(objectives) <= 2:
        raise _bad(where, "'study.objectives' needs one or two objectives")
    for o in objectives:
        if o not in OBJECTIVES:
            raise _bad(where, f"'study.objectives': unknown objective '{o}' (known: {', '.join(OBJECTIVES)})")
    weights = kwargs.pop("weights", {})
    _expect(where, "study.weights", weights, dict, "a table of objective = weight")
    for o, w in weights.items():
        if o not in objectives:
            raise _bad(where, f"'study.weights.{o}': not one of study.objectives")
        weights[o] = _expect(where, f"study.weights.{o}", w, float, "a number")
    for key in list(kwargs):
        if key in _STUDY_FIELDS:
            kwargs[key] = _study_value(where, key, kwargs[key])
    pruner = kwargs.get("pruner", "none")
    if pruner not in ("none", "median") and len(objectives) == 2 and not weights:
        raise _bad(where, f"'study.pruner' = {pruner!r}: a Pareto study of two objectives is pruned by ganlab's median "
                          "rule only; set pruner = \"median\" (or \"none\"), or study.weights to scalarise it")
    if pruner not in ("none", "median") and kwargs.get("seeds", 1) > 1:
        raise _bad(where, f"'study.pruner' = {pruner!r}: with seeds > 1 a trial is pruned on the mean of its seeds by "
                          "ganlab's median rule; set pruner = \"median\" (or \"none\")")
    if "prune_on" in kwargs:
        _check_prune_on(where, kwargs["prune_on"], objectives, weights)
    try:
        check_run_name(name, "'study.name' =")
    except UsageError as exc:
        raise _bad(where, str(exc)) from None

    train = _expect(where, "train", data.get("train", {}), dict, "a table")
    if "tricks" in {k.replace("-", "_") for k in train}:
        raise _bad(where, "'train.tricks': put tricks in the [tricks] table (always = [...])")
    coerce_fields(TrainConfig, train, f"{where} [train]")

    search_tbl = _expect(where, "search", data.get("search", {}), dict, "a table")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    search = []
    for key, value in search_tbl.items():
        if key.replace("-", "_") not in fields or key in ("data", "val_data", "data_a", "data_b", "val_data_a", "val_data_b", "out", "name", "tricks"):
            raise _bad(where, f"unknown key 'search.{key}' (a `ganlab train` setting such as lr, beta1, lambda_l1, ndf, n_layers, gan_mode)")
        r = _range(where, f"search.{key}", value)
        for v in (r.choices if r.choices is not None else (r.low, r.high)):  # wrong types now, not per trial
            coerce_fields(TrainConfig, {key: v}, f"{where} [search]")
        search.append((key.replace("-", "_"), r))

    check_search_bounds(where, objectives, train, search)

    tricks_tbl = _expect(where, "tricks", data.get("tricks", {}), dict, "a table")
    unknown = set(tricks_tbl) - {"optional", "always", "groups", "params", "fixed"}
    if unknown:
        raise _bad(where, f"unknown key 'tricks.{sorted(unknown)[0]}' (allowed: optional, always, groups, params, fixed)")
    known = registry()

    def trick_name(key: str, name) -> str:
        _expect(where, key, name, str, "a trick name")
        if name not in known and name != NONE:
            raise _bad(where, f"'{key}': unknown trick '{name}' (see ganlab tricks)")
        return name

    optional = tuple(trick_name("tricks.optional", n) for n in _expect(where, "tricks.optional", tricks_tbl.get("optional", []), list, "a list"))
    always = tuple(trick_name("tricks.always", n) for n in _expect(where, "tricks.always", tricks_tbl.get("always", []), list, "a list"))
    groups = []
    for gname, members in _expect(where, "tricks.groups", tricks_tbl.get("groups", {}), dict, "a table").items():
        _expect(where, f"tricks.groups.{gname}", members, list, "a list of trick names (\"none\" allowed)")
        if len(members) < 2:
            raise _bad(where, f"'tricks.groups.{gname}' needs at least two choices")
        groups.append((gname, tuple(trick_name(f"tricks.groups.{gname}", m) for m in members)))
    spec_names = set(optional) | set(always) | {m for _, ms in groups for m in ms}
    ranges = []
    for tname, params in _expect(where, "tricks.params", tricks_tbl.get("params", {}), dict, "a table").items():
        if tname not in spec_names:
            raise _bad(where, f"'tricks.params.{tname}': the trick is not in optional, always or groups")
        infos = {i.key: i for i in param_infos(known[tname].Params)}
        rs = []
        for pname, value in _expect(where, f"tricks.params.{tname}", params, dict, "a table").items():
            if pname not in infos:
                raise _bad(where, f"'tricks.params.{tname}.{pname}': unknown parameter (allowed: {', '.join(infos)})")
            r = _range(where, f"tricks.params.{tname}.{pname}", value)
            for v in (r.choices if r.choices is not None else (r.low, r.high)):  # within what the trick allows
                try:
                    known[tname].parse_params({pname: v})
                except UsageError as exc:
                    raise _bad(where, f"'tricks.params.{tname}.{pname}': {exc}") from None
            rs.append((pname, r))
        ranges.append((tname, tuple(rs)))
    fixed = []
    for tname, params in _expect(where, "tricks.fixed", tricks_tbl.get("fixed", {}), dict, "a table").items():
        if tname not in spec_names:
            raise _bad(where, f"'tricks.fixed.{tname}': the trick is not in optional, always or groups")
        _expect(where, f"tricks.fixed.{tname}", params, dict, "a table")
        try:
            known[tname].parse_params(params)  # refuses unknown names and bad values now
        except UsageError as exc:
            raise _bad(where, f"'tricks.fixed.{tname}': {exc}") from None
        fixed.append((tname, tuple(params.items())))
    _refuse_overridden(where, train, search, always, optional, groups, dict(ranges), dict(fixed))
    arms = _arms(where, data.get("arms", {}), train)
    if arms and (search or optional or groups or always or ranges or fixed):
        raise _bad(where, "[arms] compares fixed configurations and [search]/[tricks] search them: a definition "
                          "gives one or the other (put an always-on trick in each arm's tricks = [...])")
    return StudySpec(
        name=name, objectives=tuple(objectives), weights=tuple(weights.items()), train=tuple(train.items()),
        search=tuple(search), optional=optional, always=always, groups=tuple(groups),
        trick_ranges=tuple(ranges), trick_fixed=tuple(fixed), arms=arms, source=text, **kwargs,
    )


RESERVED_ARMS = ("baseline", "l1-only")  # the arms every confirmation adds itself
_NOT_PER_ARM = ("data", "val_data", "data_a", "data_b", "val_data_a", "val_data_b", "out", "name", "steps", "eval_every",
                "seed", "resume", "config")


def _arms(where: str, table: Any, train: Mapping[str, Any]) -> tuple:
    """``[arms.NAME]`` tables: ``ganlab train`` settings that differ from ``[train]``, and
    ``tricks = ["name:key=value", ...]``. Each arm is checked as a run of it would be (its
    settings, its tricks' parameters, the combination), so a typo is refused before any run."""
    table = _expect(where, "arms", table, dict, "a table of [arms.NAME] tables")
    known = registry()
    out = []
    seen: dict[tuple, str] = {}
    for label, body in table.items():
        key = f"arms.{label}"
        try:
            check_run_name(label, f"'{key}':")
        except UsageError as exc:
            raise _bad(where, str(exc)) from None
        if label in RESERVED_ARMS:
            raise _bad(where, f"'{key}': every confirmation has its own {label} arm; name this one otherwise")
        body = dict(_expect(where, key, body, dict, "a table of settings and tricks = [...]"))
        tricks_given = body.pop("tricks", [])
        for k in body:
            if k.replace("-", "_") in _NOT_PER_ARM:
                raise _bad(where, f"'{key}.{k}': set for the whole study ([study] or [train], or on the command line), "
                                  f"not per arm")
        settings = coerce_fields(TrainConfig, body, f"{where} [{key}]")
        specs = coerce_fields(TrainConfig, {"tricks": tricks_given}, f"{where} [{key}]")["tricks"]
        tricks = []
        for t in specs:
            if t.name not in known:
                raise _bad(where, f"'{key}.tricks': unknown trick '{t.name}' (see ganlab tricks)")
            try:
                params = known[t.name].parse_params(t.values)
            except UsageError as exc:
                raise _bad(where, f"'{key}.tricks': {exc}") from None
            typed = {i.key: getattr(params, i.name) for i in param_infos(known[t.name].Params) if
                     i.key in t.values or i.name in t.values}
            tricks.append((t.name, tuple(sorted(typed.items()))))
        if len({n for n, _ in tricks}) != len(tricks):
            raise _bad(where, f"'{key}.tricks' names a trick twice")
        try:
            build_stack(TrainConfig.from_dict({**train, **settings, "tricks": [{"name": n, "params": dict(v)}
                                                                                for n, v in tricks]},
                                              f"{where} [{key}]").validate())
        except UsageError as exc:
            raise _bad(where, f"'{key}': {exc}") from None
        arm = (tuple(sorted(settings.items())), tuple(tricks))
        if not settings and not tricks:
            raise _bad(where, f"'{key}' is the baseline's configuration (no setting, no trick): every confirmation "
                              f"has the baseline already")
        if arm in seen:
            raise _bad(where, f"'{key}' is the same configuration as 'arms.{seen[arm]}'")
        seen[arm] = label
        out.append((label, *arm))
    return tuple(out)


def _alternatives(key: str, value: Any) -> tuple:
    """Values to set a fixed ``[train]`` setting to, to see whether it changes anything: its
    choices, both booleans, or the value and a different one."""
    f = next(f for f in dataclasses.fields(TrainConfig) if f.name == key)
    choices = f.metadata.get("ganlab", {}).get("choices")
    if choices is not None:
        return tuple(choices)
    if isinstance(value, bool):
        return (False, True)
    if isinstance(value, int):
        return (value, value + 1)
    if isinstance(value, float):
        return (value, value * 2 if value else 1.0)
    return tuple(dict.fromkeys((value, f.default)))


def _param_alternatives(info, value: Any) -> tuple:
    """The same for a fixed trick parameter: its declared choices or bounds, else the value and
    its default."""
    if info.type is bool:
        return (False, True)
    if info.choices is not None:
        return tuple(info.choices)
    if info.low is not None and info.high is not None:
        return (info.low, info.high)
    return tuple(dict.fromkeys((value, info.default)))


def _what(fields: tuple[str, ...]) -> str:
    """``("optim.lr_g", "optim.lr_d")`` -> ``"the optimisers' lr_g and lr_d"``."""
    parts = []
    for prefix, label in (("nets.", "the networks' "), ("optim.", "the optimisers' ")):
        names = [f[len(prefix):] for f in fields if f.startswith(prefix)]
        if names:
            parts.append(label + " and ".join(names))
    if "loss" in fields:
        parts.append("the adversarial loss")
    return " and ".join(parts)


def _refuse_overridden(where: str, train: dict, search: list, always: tuple, optional: tuple, groups: list,
                       ranges: dict, fixed: dict) -> None:
    """Refuse a setting the study fixes or searches that its always-on tricks override.

    Asked of the tricks' build hooks, not of their names (:mod:`ganlab.train.build`): a setting
    is overridden when, set to each of its values (the ends of its range, every choice), it
    changes what the run uses without tricks and changes nothing under the always-on tricks, at
    their fixed or default parameters and at both ends of each parameter the study searches.
    Optional tricks never cause a refusal: under them a parameter is drawn where it is live."""
    if not always:
        return
    known = registry()

    def build_trick(name: str, values: Mapping[str, Any]):
        return known[name](known[name].parse_params(values))
    cfg = TrainConfig.from_dict(train, f"{where} [train]")

    def values_of(name: str) -> list[dict[str, Any]]:
        """The always-on trick's parameters: fixed/default, then each searched one at its ends."""
        base = dict(fixed.get(name, ()))
        out = [base]
        for info in param_infos(known[name].Params):
            if info.key in base:
                continue
            r = dict(ranges.get(name, ())).get(info.key)
            space = info.search_space() if r is None else (
                ("categorical", r.choices) if r.choices is not None else ("float", r.low, r.high))
            if space is not None:
                ends = space[1] if space[0] == "categorical" else space[1:3]
                out += [{**base, info.key: v} for v in ends]
        return out

    def stacks(names) -> list[list]:
        """Each always-on trick varied in turn, the others at their fixed/default values."""
        plain = {n: build_trick(n, dict(fixed.get(n, ()))) for n in names}
        out = [list(plain.values())]
        for n in names:
            out += [[build_trick(n, v) if m == n else plain[m] for m in names] for v in values_of(n)[1:]]
        return out

    def culprits(dead_under) -> list[str]:
        alone = [n for n in always if dead_under([n])]
        return alone or list(always)

    def refuse(label: str, by: list[str], reached: tuple[str, ...]) -> UsageError:
        tricks = " and ".join(f"--trick {n}" for n in by)
        they, self = ("it sets", "itself") if len(by) == 1 else ("they set", "themselves")
        return _bad(where, f"'{label}' is overridden by {tricks} (always on): {they} {_what(reached)} {self}; "
                           f"drop {label} or make {' and '.join(by)} optional")

    settings = [(f"train.{k}", k, _alternatives(k, cfg_value)) for k, cfg_value in
                ((k.replace("-", "_"), getattr(cfg, k.replace("-", "_"))) for k in train)]
    settings += [(f"search.{k}", k, tuple(coerce_fields(TrainConfig, {k: v}, where)[k] for v in
                                          (r.choices if r.choices is not None else (r.low, r.high))))
                 for k, r in search]
    for label, key, values in settings:
        def dead_under(names, key=key, values=values):
            return all(overridden_setting(cfg, key, values, s) for s in stacks(names))

        if dead_under(list(always)):
            reached = overridden_setting(cfg, key, values, stacks(list(always))[0])
            raise refuse(label, culprits(dead_under), reached)

    # A trick parameter the study searches or fixes, overridden by the always-on tricks later in
    # the fold (wgan-gp's lr under ttur): dead whenever its trick is on.
    candidates = list(dict.fromkeys([*always, *optional, *(m for _, ms in groups for m in ms if m != NONE)]))
    for tname in candidates:
        infos = {i.key: i for i in param_infos(known[tname].Params)}
        asked = [(f"tricks.params.{tname}.{p}", p, r.choices if r.choices is not None else (r.low, r.high))
                 for p, r in ranges.get(tname, ())]
        asked += [(f"tricks.fixed.{tname}.{p}", p, _param_alternatives(infos[p], v)) for p, v in fixed.get(tname, ())]
        others = [n for n in always if n != tname]
        if not others:
            continue
        own = dict(fixed.get(tname, ()))
        for label, pname, values in asked:
            def dead_under(names, pname=pname, values=values):
                variants = [build_trick(tname, {**own, pname: v}) for v in values]
                return all(overridden_trick_param(cfg, variants, s) for s in stacks([n for n in names if n != tname]))

            if dead_under(others):
                variants = [build_trick(tname, {**own, pname: v}) for v in values]
                reached = overridden_trick_param(cfg, variants, stacks(others)[0])
                by = [n for n in others if dead_under([n])] or others
                raise refuse(label, by, reached)


def builtin_studies() -> dict[str, Path]:
    folder = resources.files("ganlab.studies")
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def load_study_file(path_or_name: str | None) -> StudySpec:
    """``--study``: a TOML file, or the name of a built-in study (``quickstart``)."""
    name = path_or_name or "quickstart"
    p = Path(name).expanduser()
    if not p.is_file():
        builtin = builtin_studies()
        if name in builtin:
            p = builtin[name]
        elif name.endswith(".toml") and Path(name).stem in builtin and not p.exists():
            p = builtin[Path(name).stem]
        else:
            raise UsageError(f"--study {name}: no such file; give a TOML file or one of {', '.join(sorted(builtin))}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--study {name}: cannot be read ({exc})") from None
    return parse_study(text, f"--study {name}", p.stem)
