"""``ganlab study``: search trick combinations and hyperparameters with Optuna.

A study definition (TOML, see ``studies/``) fixes the data and base training settings, says
which tricks may be switched on and which base hyperparameters are searched, and names one or
two objectives. Each trial is an ordinary ganlab run folder. Optuna's storages carry the
study: a SQLite file by default, or any RDB URL (``postgresql://...``) that many workers on
many machines join by running the same command. Heartbeats mark a trial whose worker died as
failed, and the failed trial is retried.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import math
import os
import random
import threading
import time
import tomllib
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from ganlab.errors import GanlabError, UsageError

DESCRIPTION = """\
Search trick combinations and hyperparameters with Optuna.

With no --study it runs the quickstart study (the built-in sample set, tiny networks, a
weight-free quality metric and the instability score, NSGA-II) -- four trials take a few
minutes on a CPU, offline. Running the same command again adds trials to the same study.

Objectives (minimised unless marked):
  swd, color_hist, val_l1, colorfulness_gap, kid, fid    image quality on the validation set
  psnr, ssim (maximised)                                 per-image fidelity
  instability                                            the instability score (see ganlab eval --help)
Two objectives make a Pareto study (NSGA-II or multi-objective TPE, unpruned); one objective,
or two with [study].weights, make a single scalar that can be pruned. The pruner watches the
objective itself at every evaluation when training measures it (all but fid and instability),
else val/L1; [study].prune_on = "val/swd" (any in-loop metric) picks another.

Storage: a SQLite file by default (<out>/studies.db); --storage journal:///path/study.log (an
Optuna journal file) for several workers on one machine; --storage postgresql://user@host/db lets
any number of workers on many machines join the same study. A trial whose worker died is marked
failed and run again once. A diverged trial (NaN) is recorded as failed with
its step; an impossible trick stack is pruned at once with its reason, never trained.

Examples:
  ganlab study --trials 4
  ganlab study --study studies/label-tricks.toml --data photos/ --trials 40
  ganlab study --study label-tricks --storage postgresql://ganlab@db/ganlab --trials 10
  ganlab study --study label-tricks --storage journal:///scratch/label-tricks.log --trials 10 &  # x4
  ganlab report quickstart
"""


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

# What the in-loop evaluation (``trainer.evaluate``: ``val/L1`` plus ``metrics.inloop``) reports
# every ``eval_every`` steps, with the direction in which each is better. ``val/kid`` only where
# the Inception weights are already here.
INLOOP_METRICS: dict[str, str] = {
    "val/L1": "minimize", "val/swd": "minimize", "val/color_hist": "minimize", "val/psnr": "maximize",
    "val/ssim": "maximize", "val/ab_l1": "minimize", "val/colorfulness_gap": "minimize", "val/kid": "minimize",
}
# What a pruned study watches when its objective is not measured in the training loop (fid,
# instability): the validation L1, in the network's scaling.
PRUNE_PROXY = "val/L1"
WEIGHTED = "weighted"

SAMPLERS = ("nsga2", "tpe", "random")
PRUNERS = ("none", "median", "successive-halving", "hyperband")
NONE = "none"


# ---------------------------------------------------------------------------------------------
# The study definition
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple | None = None
    int: bool = False


@dataclass(frozen=True)
class StudySpec:
    name: str
    objectives: tuple[str, ...]
    weights: tuple[tuple[str, float], ...] = ()
    sampler: str = "nsga2"
    pruner: str = "none"
    prune_on: str | None = None  # None: the objective itself where it is measured in the loop, else PRUNE_PROXY
    population_size: int = 8
    steps: int = 200
    eval_every: int = 50
    seed: int | None = 0
    heartbeat_interval: int = 30
    grace_period: int = 90
    max_retry: int = 1
    train: tuple[tuple[str, Any], ...] = ()
    search: tuple[tuple[str, Range], ...] = ()
    optional: tuple[str, ...] = ()
    always: tuple[str, ...] = ()
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    trick_ranges: tuple[tuple[str, tuple[tuple[str, Range], ...]], ...] = ()
    trick_fixed: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    source: str = ""

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
            if all(_measured_in_loop(o) for o, w in self.weights if w):
                return WEIGHTED, True
            return PRUNE_PROXY, False
        if single and _measured_in_loop(self.objectives[0]):
            return self.objectives[0], True
        return PRUNE_PROXY, False

    def candidate_tricks(self) -> list[str]:
        names = list(self.always) + list(self.optional)
        for _, members in self.groups:
            names += [m for m in members if m != NONE]
        return names


def _measured_in_loop(objective: str) -> bool:
    return OBJECTIVES[objective].metric in INLOOP_METRICS


def _check_prune_on(where: str, value: str, objectives, weights) -> None:
    ok = [*INLOOP_METRICS, *(o for o in OBJECTIVES if _measured_in_loop(o))]
    if value == WEIGHTED:
        if not weights:
            raise _bad(where, "'study.prune_on' = \"weighted\" needs study.weights")
        outside = [o for o, w in weights.items() if w and not _measured_in_loop(o)]
        if outside:
            raise _bad(where, f"'study.prune_on' = \"weighted\": {outside[0]} is not measured during training; "
                              f"prune on one of {', '.join(ok)}")
        return
    if value not in ok:
        why = " (not measured during training)" if value in OBJECTIVES else ""
        raise _bad(where, f"'study.prune_on' = {value!r}{why}: choose an in-loop metric: {', '.join(ok)}"
                          f"{', weighted' if weights else ''}")


_STUDY_KEYS = {f.name for f in dataclasses.fields(StudySpec)} - {
    "name", "train", "search", "optional", "always", "groups", "trick_ranges", "trick_fixed", "source"}


def _bad(where: str, msg: str) -> UsageError:
    return UsageError(f"{where}: {msg}")


def _expect(where: str, key: str, value, types, what: str):
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise _bad(where, f"'{key}' = {value!r} should be {what}")
    if not isinstance(value, types):
        raise _bad(where, f"'{key}' = {value!r} should be {what}")
    return value


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
    low = _expect(where, f"{key}.low", value["low"], (int, float), "a number")
    high = _expect(where, f"{key}.high", value["high"], (int, float), "a number")
    if low > high:
        raise _bad(where, f"'{key}': low {low} is above high {high}")
    log = _expect(where, f"{key}.log", value.get("log", False), bool, "true or false")
    if log and low <= 0:
        raise _bad(where, f"'{key}': a log range needs low > 0")
    is_int = value.get("int", isinstance(low, int) and isinstance(high, int) and not log)
    return Range(low=low, high=high, log=log, int=bool(is_int))


def parse_study(text: str, where: str, default_name: str) -> StudySpec:
    """Validate a study definition; unknown keys and wrong types are refused with their name."""
    from ganlab.config import TrainConfig, coerce_fields
    from ganlab.hooks import param_infos, registry

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _bad(where, f"not valid TOML ({exc})") from None
    unknown = set(data) - {"study", "train", "search", "tricks"}
    if unknown:
        raise _bad(where, f"unknown table '{sorted(unknown)[0]}' (allowed: study, train, search, tricks)")
    study = _expect(where, "study", data.get("study", {}), dict, "a table")
    kwargs: dict[str, Any] = {}
    for key, value in study.items():
        k = key.replace("-", "_")
        if k not in _STUDY_KEYS | {"name"}:
            raise _bad(where, f"unknown key 'study.{key}'")
        kwargs[k] = value
    name = _expect(where, "study.name", kwargs.pop("name", default_name), str, "a string")
    objectives = kwargs.pop("objectives", ["swd", "instability"])
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
        _expect(where, f"study.weights.{o}", w, (int, float), "a number")
    for key, types, what in (
        ("sampler", str, "a string"), ("pruner", str, "a string"), ("prune_on", str, "a string"),
        ("population_size", int, "a whole number"), ("steps", int, "a whole number"),
        ("eval_every", int, "a whole number"), ("seed", int, "a whole number"),
        ("heartbeat_interval", int, "a whole number"), ("grace_period", int, "a whole number"),
        ("max_retry", int, "a whole number"),
    ):
        if key in kwargs:
            _expect(where, f"study.{key}", kwargs[key], types, what)
    if kwargs.get("sampler", "nsga2") not in SAMPLERS:
        raise _bad(where, f"'study.sampler' = {kwargs['sampler']!r}: choose {', '.join(SAMPLERS)}")
    if kwargs.get("pruner", "none") not in PRUNERS:
        raise _bad(where, f"'study.pruner' = {kwargs['pruner']!r}: choose {', '.join(PRUNERS)}")
    if kwargs.get("pruner", "none") != "none" and len(objectives) == 2 and not weights:
        raise _bad(where, "'study.pruner': a Pareto study of two objectives cannot be pruned; "
                          "set study.weights to scalarise it, or pruner = \"none\"")
    if "prune_on" in kwargs:
        _check_prune_on(where, kwargs["prune_on"], objectives, weights)
    for key in ("steps", "eval_every", "population_size", "heartbeat_interval", "grace_period"):
        if key in kwargs and kwargs[key] < 1:
            raise _bad(where, f"'study.{key}' must be >= 1")
    if kwargs.get("population_size", 2) < 2:
        raise _bad(where, f"'study.population_size' = {kwargs['population_size']}: must be >= 2 (NSGA-II breeds pairs)")
    if kwargs.get("max_retry", 0) < 0:
        raise _bad(where, f"'study.max_retry' = {kwargs['max_retry']}: must be >= 0")
    if kwargs.get("seed") is not None and not 0 <= kwargs["seed"] < 2**32:
        raise _bad(where, f"'study.seed' = {kwargs['seed']}: must be in [0, {2**32 - 1}]")
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise _bad(where, f"'study.name' = {name!r}: use a plain name (letters, digits, - and _); it names a folder")

    train = _expect(where, "train", data.get("train", {}), dict, "a table")
    if "tricks" in {k.replace("-", "_") for k in train}:
        raise _bad(where, "'train.tricks': put tricks in the [tricks] table (always = [...])")
    coerce_fields(TrainConfig, train, f"{where} [train]")

    search_tbl = _expect(where, "search", data.get("search", {}), dict, "a table")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    search = []
    for key, value in search_tbl.items():
        if key.replace("-", "_") not in fields or key in ("data", "val_data", "out", "name", "tricks"):
            raise _bad(where, f"unknown key 'search.{key}' (a `ganlab train` setting such as lr, beta1, lambda_l1, ndf, n_layers, gan_mode)")
        r = _range(where, f"search.{key}", value)
        for v in (r.choices if r.choices is not None else (r.low, r.high)):  # wrong types now, not per trial
            coerce_fields(TrainConfig, {key: v}, f"{where} [search]")
        search.append((key.replace("-", "_"), r))

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
    return StudySpec(
        name=name, objectives=tuple(objectives), weights=tuple(weights.items()), train=tuple(train.items()),
        search=tuple(search), optional=optional, always=always, groups=tuple(groups),
        trick_ranges=tuple(ranges), trick_fixed=tuple(fixed), source=text, **kwargs,
    )


def builtin_studies() -> dict[str, Path]:
    folder = resources.files("studies")
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


# ---------------------------------------------------------------------------------------------
# The search space: base hyperparameters, tricks switched on, their parameters
# ---------------------------------------------------------------------------------------------


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
    from ganlab.hooks import param_infos, registry

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


# ---------------------------------------------------------------------------------------------
# Storage, sampler, pruner
# ---------------------------------------------------------------------------------------------


def default_storage(out: str) -> str:
    return f"sqlite:///{Path(out).expanduser().resolve() / 'studies.db'}"


def open_storage(url: str, spec: StudySpec | None = None):
    import optuna
    from optuna.storages import RDBStorage, RetryFailedTrialCallback

    hb = spec.heartbeat_interval if spec else 30
    grace = spec.grace_period if spec else 90
    retry = spec.max_retry if spec else 1
    if is_journal(url):
        return open_journal(url)
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--storage {url}: cannot create {path.parent} ({exc.strerror})") from None
        if path.exists() and path.stat().st_size and path.read_bytes()[:16] != b"SQLite format 3\x00":
            raise UsageError(f"--storage {url}: {path} is not a SQLite database; point --storage at another file")
    def connect():
        with warnings.catch_warnings():
            # Heartbeats and their retry callback are marked experimental in Optuna.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", FutureWarning)
            return RDBStorage(
                url,
                engine_kwargs=None if url.startswith("sqlite") else {
                    "pool_pre_ping": True,
                    # a server that cannot be reached is reported in seconds, not after minutes
                    **({"connect_args": {"connect_timeout": 10}} if url.startswith("postgresql") else {}),
                },
                heartbeat_interval=hb,
                grace_period=grace,
                failed_trial_callback=RetryFailedTrialCallback(max_retry=retry),
            )

    try:
        from sqlalchemy.exc import IntegrityError, ProgrammingError

        for attempt in range(4):
            try:
                return connect()
            except (IntegrityError, ProgrammingError):
                # Workers that start together race to create the tables; the loser retries
                # and finds them made.
                if attempt == 3:
                    raise
                time.sleep(0.5 + random.random())
    except ImportError as exc:
        hint = ("pip install 'psycopg[binary]' for PostgreSQL" if url.startswith("postgresql")
                else "install the driver for this database, or use sqlite:///FILE.db or journal:///FILE.log")
        raise UsageError(f"--storage {url}: the database driver is missing ({exc.name or exc}); {hint}") from None
    except Exception as exc:  # sqlalchemy's OperationalError and friends
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"--storage {url}: cannot open the study storage ({first[:200]}); "
                         f"check the URL, that the server is up and reachable") from None


def is_journal(url: str) -> bool:
    """``journal:///path/study.log`` or a plain path ending in ``.log``: Optuna's JournalStorage
    on a JournalFileBackend, the storage Optuna advises for many workers on one machine."""
    return url.startswith("journal://") or ("://" not in url and url.endswith(".log"))


def open_journal(url: str):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = Path(url[len("journal://"):] if url.startswith("journal://") else url).expanduser()
    if not path.name or path.is_dir():
        raise UsageError(f"--storage {url}: give the journal file, e.g. journal:///path/to/study.log")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise UsageError(f"--storage {url}: cannot write {path} ({exc.strerror}); choose a writable place") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return JournalStorage(JournalFileBackend(str(path)))
    except Exception as exc:  # noqa: BLE001 - a file that is not an Optuna journal
        raise UsageError(f"--storage {url}: {path} is not an Optuna journal ({type(exc).__name__}); "
                         "point --storage at another file") from None


# ---------------------------------------------------------------------------------------------
# Trials whose worker died
# ---------------------------------------------------------------------------------------------

WORKER_ATTR = "worker"
_PER_WORKER_ATTRS = (WORKER_ATTR, "run_dir", "last_eval_step", "seconds")


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), telling a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _process_alive(pid: int, start: str | None) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        if fields[0] in (b"Z", b"X"):  # killed, not yet reaped
            return False
        return start is None or fields[19].decode() == start
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def stamp_worker(trial) -> None:
    """Record which process runs ``trial`` (host, pid, its start time), first thing in a trial."""
    import socket

    trial.set_user_attr(WORKER_ATTR, {"host": socket.gethostname(), "pid": os.getpid(),
                                      "pid_start": _process_start(os.getpid()), "trial": trial.number})


def _worker_is_dead(trial, grace_period: float) -> bool:
    import socket
    from datetime import datetime

    stamp = trial.user_attrs.get(WORKER_ATTR)
    if isinstance(stamp, dict) and stamp.get("trial") == trial.number:
        if stamp.get("host") != socket.gethostname():
            return False  # another machine's worker: its storage's heartbeats judge it
        return not _process_alive(int(stamp["pid"]), stamp.get("pid_start"))
    # No stamp (or one inherited from the trial it retries): the worker died between taking the
    # trial and its first line, or is just about to write it.
    started = trial.datetime_start
    return started is not None and (datetime.now() - started).total_seconds() > grace_period


def recover_dead_trials(study, spec: StudySpec) -> list[int]:
    """Fail the RUNNING trials whose worker process is gone and enqueue each once for a retry,
    as Optuna's RetryFailedTrialCallback does for a stale heartbeat. Needed for the journal
    storage (no heartbeats), and for the moment before an RDB trial's first heartbeat. Of several
    workers that find the same trial, the storage lets exactly one fail it."""
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _worker_is_dead(trial, spec.grace_period):
            continue
        try:
            if not study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except (UpdateFinishedTrialError, KeyError):
            continue  # another worker failed it first (or it finished after all)
        except Exception:  # noqa: BLE001 - a busy storage: the next pass tries again
            continue
        failed.append(trial.number)
        system_attrs = {"failed_trial": trial.number, "retry_history": [], **trial.system_attrs}
        system_attrs["retry_history"] = [*system_attrs["retry_history"], trial.number]
        if spec.max_retry < len(system_attrs["retry_history"]):
            continue
        study.add_trial(optuna.create_trial(
            state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
            user_attrs={k: v for k, v in trial.user_attrs.items() if k not in _PER_WORKER_ATTRS},
            system_attrs=system_attrs,
        ))
    return failed


def make_sampler(spec: StudySpec, seed: int | None):
    import optuna

    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "tpe" or spec.scalarised:
        # TPE handles both one objective and several (MOTPE); conditional trick parameters
        # are searched jointly where they appear together.
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=min(10, spec.population_size))
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=spec.population_size)


def make_pruner(spec: StudySpec):
    import optuna

    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=spec.eval_every)
    if spec.pruner == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=spec.eval_every)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=spec.eval_every, max_resource=spec.steps)
    return optuna.pruners.NopPruner()


# ---------------------------------------------------------------------------------------------
# One trial
# ---------------------------------------------------------------------------------------------


def objective_values(spec: StudySpec, metrics: Mapping[str, float], instability: float) -> list[float]:
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
    if spec.weights:
        w = dict(spec.weights)
        sign = {n: (1.0 if OBJECTIVES[n].direction == "minimize" else -1.0) for n in spec.objectives}
        return [sum(sign[n] * w.get(n, 0.0) * values[n] for n in spec.objectives)]
    return [values[n] for n in spec.objectives]


def _inloop_value(key: str, metrics: Mapping[str, float]) -> float | None:
    v = metrics.get(key)
    if v is None:
        return None
    return abs(v) if key == "val/colorfulness_gap" else float(v)  # as the objective counts it


def _scalar_for_pruning(spec: StudySpec, metrics: Mapping[str, float]) -> float | None:
    """The value reported to the pruner at an evaluation, in the study's direction; None when the
    evaluation did not produce it."""
    label, _ = spec.pruning_target
    if label == WEIGHTED:
        w = dict(spec.weights)
        total = 0.0
        for n in spec.objectives:
            if not w.get(n, 0.0):
                continue
            v = _inloop_value(OBJECTIVES[n].metric or "", metrics)
            if v is None:
                return None
            total += (1.0 if OBJECTIVES[n].direction == "minimize" else -1.0) * w[n] * v
        return total
    if label in OBJECTIVES:
        return _inloop_value(OBJECTIVES[label].metric or "", metrics)
    v = _inloop_value(label, metrics)
    if v is not None and INLOOP_METRICS.get(label, "minimize") != spec.directions[0]:
        v = -v  # a higher-is-better proxy in a minimised study (or the reverse)
    return v


def describe_pruning(spec: StudySpec) -> str:
    label, is_objective = spec.pruning_target
    if is_objective:
        return f"on the objective ({label}) at each evaluation"
    outside = [o for o in spec.objectives if not _measured_in_loop(o)]
    why = "set by prune_on" if spec.prune_on else f"{', '.join(outside) or 'the objective'} is not measured during training"
    return f"on {label} at each evaluation ({why})"


@dataclass
class StudyRunner:
    spec: StudySpec
    storage_url: str
    out: Path
    overrides: dict[str, Any]
    seed: int | None
    console: Any
    inception_weights: str | None = None
    _datasets: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    ran: list = field(default_factory=list)  # numbers of the trials this worker took, retries included

    def base_config(self) -> dict[str, Any]:
        cfg = {k.replace("-", "_"): v for k, v in self.spec.train}
        cfg.update({"steps": self.spec.steps, "eval_every": self.spec.eval_every, "save_every": self.spec.steps})
        cfg.update(self.overrides)
        return cfg

    def datasets(self, cfg):
        """Decoded images are shared between the trials of this process (same data settings)."""
        from ganlab.data import build_datasets

        key = (cfg.data, cfg.val_data, cfg.task, cfg.direction, cfg.size, cfg.effective_load_size, cfg.seed, cfg.val_split)
        with self._lock:
            if key not in self._datasets:
                self._datasets[key] = build_datasets(cfg, lambda m: None)
            return self._datasets[key]

    def __call__(self, trial) -> list[float]:
        import optuna

        from ganlab.config import TrainConfig, TrickSpec
        from ganlab.hooks import TrickStack, build_trick
        from ganlab.metrics.stability import instability_from_run
        from ganlab.trainer import Diverged, train

        stamp_worker(trial)  # first: a worker that dies from here on is found by recover_dead_trials
        with self._lock:
            self.ran.append(trial.number)
        t0 = time.time()
        base, tricks = sample_trial(self.spec, trial)
        trial.set_user_attr("tricks", [n for n, _ in tricks])
        cfg_dict = self.base_config()
        cfg_dict.update(base)
        cfg_dict["tricks"] = [TrickSpec(n, tuple(v.items())) for n, v in tricks]
        cfg_dict["name"] = f"{self.spec.name}-t{trial.number:04d}"
        cfg_dict["out"] = str(self.out / self.spec.name)
        try:
            cfg = TrainConfig.from_dict(cfg_dict, f"study {self.spec.name}").validate()
            TrickStack([build_trick(n, v) for n, v in tricks], cfg.gan_mode)
            from ganlab.memory import check_fits
            from ganlab.runtime import runtime_for

            check_fits(cfg, runtime_for(cfg))  # a drawn batch or width that cannot fit
        except UsageError as exc:
            # An impossible combination is never trained: the trial is pruned with its reason.
            trial.set_user_attr("refused", str(exc))
            raise optuna.TrialPruned(f"refused: {exc}") from None
        log = io.StringIO()
        from rich.console import Console

        console = Console(file=log, width=120, soft_wrap=True)

        def on_eval(step: int, metrics: dict[str, float]) -> None:
            trial.set_user_attr("last_eval_step", step)
            if self.spec.scalarised and len(trial.study.directions) == 1:
                value = _scalar_for_pruning(self.spec, metrics)
                if value is not None and math.isfinite(value):
                    trial.report(value, step)
                    if trial.should_prune():
                        label, is_objective = self.spec.pruning_target
                        # Optuna stores the last reported value as the pruned trial's value; these
                        # say what it is, so that no table shows a proxy under the objective's name.
                        trial.set_user_attr("pruned_step", step)
                        trial.set_user_attr("pruned_on", label)
                        trial.set_user_attr("pruned_on_objective", is_objective)
                        trial.set_user_attr("pruned_value", _inloop_value(label, metrics) if label in INLOOP_METRICS else value)
                        raise optuna.TrialPruned(f"pruned at step {step} on {label} = {value:.4g}")

        run_dir = None
        try:
            result = train(cfg, on_eval=on_eval, console=console, progress=False, datasets=self.datasets(cfg),
                           on_start=lambda d: self._started(trial, d))
            run_dir = result.run_dir
        except Diverged as exc:
            trial.set_user_attr("diverged_step", exc.step)
            trial.set_user_attr("diverged_value", exc.name)
            trial.set_user_attr("reason", str(exc))
            trial.set_user_attr("seconds", time.time() - t0)
            raise
        except optuna.TrialPruned:
            trial.set_user_attr("seconds", time.time() - t0)
            raise
        metrics = dict(result.metrics)
        if "fid" in self.spec.objectives:
            metrics["fid"] = self.fid(run_dir)
        report = instability_from_run(run_dir)
        values = objective_values(self.spec, metrics, report.score)
        trial.set_user_attr("metrics", {k: v for k, v in metrics.items() if math.isfinite(v)})
        trial.set_user_attr("instability", report.score if math.isfinite(report.score) else "inf")
        trial.set_user_attr("instability_terms", report.components)
        # the unknown terms and the degenerate-run label (ganlab.metrics.stability); a degenerate
        # run's score already ranks it below every non-degenerate one
        trial.set_user_attr("instability_unknown", report.unknown)
        if report.degenerate:
            trial.set_user_attr("degenerate", report.degenerate)
        trial.set_user_attr("seconds", time.time() - t0)
        self._attach(trial, run_dir, cfg, metrics, report.score, values)
        return values

    def _started(self, trial, run_dir: Path) -> None:
        trial.set_user_attr("run_dir", str(run_dir))
        from ganlab.io import atomic_write_json

        atomic_write_json(run_dir / "trial.json", {"study": self.spec.name, "trial": trial.number,
                                                   "storage": _redact(self.storage_url)})

    def fid(self, run_dir: Path) -> float:
        from ganlab.evaluate import fid_for_run

        return fid_for_run(run_dir, inception_weights=self.inception_weights)

    def _attach(self, trial, run_dir: Path, cfg, metrics, instability: float, values) -> None:
        """HParams for TensorBoard, and the sample grid as an Optuna artifact."""
        from torch.utils.tensorboard import SummaryWriter

        hp = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in trial.params.items()}
        hp["tricks"] = ",".join(trial.user_attrs.get("tricks", [])) or "none"
        hp["study"] = self.spec.name
        hp["trial"] = trial.number
        shown = {f"hparams/{k.replace('val/', '')}": v for k, v in metrics.items() if math.isfinite(v)}
        shown["hparams/instability"] = instability if math.isfinite(instability) else 1e9
        for name, v in zip(self.spec.objectives if not self.spec.weights else ["weighted"], values):
            shown[f"hparams/objective_{name}"] = v
        with SummaryWriter(str(run_dir)) as w:
            w.add_hparams(hp, shown, run_name=".")
        samples = sorted((run_dir / "samples").glob("*.png"))
        if samples:
            trial.set_user_attr("samples", str(samples[-1]))
            try:
                from optuna.artifacts import FileSystemArtifactStore, upload_artifact

                store_dir = self.out / self.spec.name / "artifacts"
                store_dir.mkdir(parents=True, exist_ok=True)
                upload_artifact(artifact_store=FileSystemArtifactStore(str(store_dir)), file_path=str(samples[-1]), study_or_trial=trial)
            except Exception as exc:  # an artifact is a convenience; the run folder holds the grid anyway
                trial.set_user_attr("artifact_error", str(exc)[:200])


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}@{host}"
    return url


# ---------------------------------------------------------------------------------------------
# The live table
# ---------------------------------------------------------------------------------------------


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def trial_cells(t, n_values: int) -> tuple[list[str], str]:
    """The objective cells and the state of one trial, as the table and the report show them.

    Optuna keeps a pruned trial's last reported value as its value. That is shown under the
    objective's name only when the pruner watched the objective itself (with the step it was
    measured at); a proxy's value (``val/L1``) goes into the state, never under the objective."""
    from optuna.trial import TrialState

    state = t.state.name.lower()
    values = [_fmt(v) for v in t.values] if t.values and t.state == TrialState.COMPLETE else ["-"] * n_values
    if t.user_attrs.get("refused"):
        state = "refused"
    elif "diverged_step" in t.user_attrs:
        state = f"diverged@{t.user_attrs['diverged_step']}"
    elif t.state == TrialState.PRUNED:
        step = t.user_attrs.get("pruned_step", t.last_step)
        label = t.user_attrs.get("pruned_on")
        value = t.user_attrs.get("pruned_value")
        if value is None and t.intermediate_values and t.last_step is not None:
            value = t.intermediate_values[t.last_step]
        if t.user_attrs.get("pruned_on_objective") and t.values and len(t.values) == n_values:
            values = [f"{_fmt(v)} @{step}" for v in t.values]
            state = f"pruned@{step}"
        elif step is not None:
            state = f"pruned@{step} ({label or 'reported value'} = {_fmt(value)})"
    return values, state


def trials_table(study, spec: StudySpec, last: int = 15):
    from rich.table import Table

    names = list(spec.objectives) if not spec.weights else ["weighted"]
    table = Table(title=f"study {study.study_name}: {len(study.trials)} trials", expand=False)
    for col in ("#", "tricks on"):
        table.add_column(col, overflow="fold")
    table.add_column("parameters", overflow="fold", min_width=20, max_width=70)  # wraps, never cut
    for col in (*names, "state", "s"):
        table.add_column(col, overflow="fold")
    best = {t.number for t in _best(study)}
    for t in study.trials[-last:]:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in t.params.items() if not k.startswith(("trick:", "group:")))
        values, state = trial_cells(t, len(names))
        mark = "*" if t.number in best else ""
        table.add_row(f"{t.number}{mark}", ", ".join(t.user_attrs.get("tricks", [])) or "-", params or "-", *values,
                      state, _fmt(float(t.user_attrs.get("seconds", 0.0))))
    return table


def _agree_on_pruning(study, spec: StudySpec, console) -> StudySpec:
    """Every worker of a study, and every continuation, reports the same metric to the pruner.

    The metric is kept in the study's user attributes. A study begun before they were kept
    pruned on ``prune_on`` or else ``val/L1``; when it holds intermediate values it goes on with
    that metric, since the pruner compares trials at the same step."""
    if not spec.scalarised:
        return spec
    label, _ = spec.pruning_target
    stored = study.user_attrs.get("prune_on")
    if stored is None:
        if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
            stored = spec.prune_on or PRUNE_PROXY
        else:
            stored = label
        study.set_user_attr("prune_on", stored)
    if stored != label:
        old = dataclasses.replace(spec, prune_on=stored)
        if old.pruning_target != spec.pruning_target:
            console.print(f"note: study {spec.name} was begun pruning on {old.pruning_target[0]}; it goes on with it "
                          f"(trials are compared step by step); use --name NEW for a study pruned on {label}",
                          highlight=False, markup=False)
        return old
    return spec


def _best(study):

    try:
        if len(study.directions) > 1:
            return study.best_trials
        return [study.best_trial]
    except ValueError:
        return []


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trials", type=int, default=None, help="trials this worker runs (default 4; with --timeout alone, until time is up)")
    p.add_argument("--study", metavar="FILE.toml|NAME", help="a study definition (default: the built-in quickstart)")
    p.add_argument("--data", metavar="PATH", help="override the study's training data")
    p.add_argument("--val-data", metavar="PATH", help="override the study's validation data")
    p.add_argument("--storage", metavar="URL", help="Optuna storage URL: sqlite:///FILE.db (default <out>/studies.db), "
                   "journal:///FILE.log (many workers, one machine) or postgresql://...")
    p.add_argument("--name", help="study name in the storage (default: the definition's name)")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--n-jobs", type=int, default=1, help="trials run in parallel threads in this process")
    p.add_argument("--seed", type=int, help="sampler seed (default: the definition's; none for shared storages)")
    p.add_argument("--out", default="runs", metavar="DIR", help="where trial run folders go (default runs)")
    p.add_argument("--device", help="override the study's --device")
    p.add_argument("--inception-weights", metavar="PATH", help="the FID Inception weights (for fid/kid objectives)")


def check_inception(spec: StudySpec, path: str | None) -> None:
    if any(OBJECTIVES[o].needs_inception for o in spec.objectives):
        from ganlab.metrics.inception import find_inception_weights

        find_inception_weights(path)  # raises the one-line message when absent offline


def run(args: argparse.Namespace) -> int:
    import optuna
    from rich.console import Console
    from rich.live import Live

    console = Console(stderr=True, soft_wrap=True)
    if args.trials is not None and args.trials < 1:
        raise UsageError(f"--trials {args.trials}: must be a whole number >= 1")
    if args.n_jobs < 1:
        raise UsageError(f"--n-jobs {args.n_jobs}: must be a whole number >= 1")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"--timeout {args.timeout}: must be a positive number of seconds")
    spec = load_study_file(args.study)
    if args.name is not None:
        if not args.name or "/" in args.name or "\\" in args.name or args.name.startswith("."):
            raise UsageError(f"--name {args.name!r}: use a plain name (letters, digits, - and _); it names a folder")
        spec = dataclasses.replace(spec, name=args.name)
    overrides = {k: v for k, v in (("data", args.data), ("val_data", args.val_data), ("device", args.device)) if v is not None}
    check_inception(spec, args.inception_weights)
    out = Path(args.out).expanduser()
    storage_url = args.storage or default_storage(args.out)
    shared = not storage_url.startswith("sqlite")
    seed = args.seed if args.seed is not None else (None if shared else spec.seed)

    # Refuse a bad [train] table before any trial: resolve the base configuration once.
    from ganlab.config import TrainConfig

    runner = StudyRunner(spec, storage_url, out, overrides, seed, console, args.inception_weights)
    TrainConfig.from_dict({**runner.base_config(), "out": str(out / spec.name)}, f"study {spec.name}").validate()
    storage = open_storage(storage_url, spec)
    # Failed and pruned trials are shown in the table with their reason; Optuna's own log lines
    # (with tracebacks) would only repeat them.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        study = optuna.create_study(
            study_name=spec.name, storage=storage, directions=spec.directions, sampler=make_sampler(spec, seed),
            pruner=make_pruner(spec), load_if_exists=True,
        )
    except ValueError as exc:
        raise UsageError(f"study {spec.name}: {exc}; use --name for a new study") from None
    stored = study.user_attrs.get("definition_digest")
    if stored is None:
        study.set_user_attr("definition_digest", spec.digest)
        study.set_user_attr("definition", spec.source)
        study.set_user_attr("objectives", list(spec.objectives) if not spec.weights else ["weighted"])
        study.set_user_attr("objective_names", list(spec.objectives))
    elif stored != spec.digest:
        raise UsageError(f"study {spec.name} in {_redact(storage_url)} was created from a different definition; "
                         f"use --name NEW to start another study, or the original file to continue")
    spec = _agree_on_pruning(study, spec, console)
    revived = recover_dead_trials(study, spec)
    if revived:
        console.print(f"trial(s) {', '.join(map(str, revived))}: their worker died; marked failed and queued again",
                      highlight=False)
    n_before = len(study.trials)
    console.print(f"[bold]ganlab study[/] {spec.name}: {', '.join(spec.objectives)}"
                  f"{' (weighted)' if spec.weights else ''}, sampler {spec.sampler if not spec.scalarised or spec.sampler != 'nsga2' else 'tpe'}, "
                  f"pruner {spec.pruner}"
                  f"{' ' + describe_pruning(spec) if spec.pruner != 'none' and spec.scalarised else ''}, "
                  f"{spec.steps} steps per trial; storage {_redact(storage_url)} "
                  f"({n_before} trials so far); runs in {out / spec.name}", highlight=False)
    n_trials = args.trials if args.trials is not None else (None if args.timeout else 4)
    t0 = time.time()
    if console.is_terminal:
        with Live(trials_table(study, spec), console=console, refresh_per_second=2, transient=False) as live:
            def refresh(study, trial) -> None:
                recover_dead_trials(study, spec)  # a worker that died meanwhile: its trial is queued again
                live.update(trials_table(study, spec))

            study.optimize(runner, n_trials=n_trials, timeout=args.timeout, n_jobs=args.n_jobs, callbacks=[refresh],
                           catch=(GanlabError,), gc_after_trial=True)
    else:
        # A log, not a terminal: no live redrawing; one line per finished trial, then the table
        # once, wide enough that its cells do not wrap over many lines.
        def log_trial(study, trial) -> None:
            recover_dead_trials(study, spec)
            names = list(spec.objectives) if not spec.weights else [WEIGHTED]
            values, state = trial_cells(trial, len(names))
            console.print(f"trial {trial.number}: {state}; " + ", ".join(f"{n} {v}" for n, v in zip(names, values)),
                          highlight=False, markup=False)

        study.optimize(runner, n_trials=n_trials, timeout=args.timeout, n_jobs=args.n_jobs, callbacks=[log_trial],
                       catch=(GanlabError,), gc_after_trial=True)
        wide = Console(file=console.file, width=max(console.width, 160), soft_wrap=True, color_system=None)
        wide.print(trials_table(study, spec))
    by_number = {t.number: t for t in study.trials}
    # The trials this worker ran, counted by number: a retried trial (queued before n_before) too.
    done = [by_number[n] for n in sorted(set(runner.ran)) if n in by_number]
    counts: dict[str, int] = {}
    for t in done:
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    console.print(f"{len(done)} trial(s) in {time.time() - t0:.0f} s ({', '.join(f'{v} {k}' for k, v in counts.items())}); "
                  f"the study holds {len(study.trials)}", highlight=False)
    best = _best(study)
    if best:
        label = "Pareto front" if len(spec.directions) > 1 else "best trial"
        console.print(f"{label}: " + "; ".join(
            f"#{t.number} [{', '.join(t.user_attrs.get('tricks', [])) or 'no tricks'}] "
            + " ".join(f"{n}={_fmt(v)}" for n, v in zip(study.user_attrs.get('objectives', []), t.values))
            for t in best), highlight=False, markup=False)
    storage_flag = f" --storage {_redact(storage_url)}" if args.storage else (f" --runs {args.out}" if args.out != "runs" else "")
    console.print(f"report: ganlab report {spec.name}{storage_flag}", highlight=False)
    console.print(f"compare the trials: tensorboard --logdir {out / spec.name}", highlight=False)
    return 0
