"""Where a study lives (Optuna's storages: a SQLite file, a journal file, PostgreSQL), how its
trials are drawn (the sampler) and cut short (the pruner)."""

from __future__ import annotations

import dataclasses
import random
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryFailedTrialCallback
from optuna.storages.journal import JournalFileBackend

from ganlab.study.record import study_record, write_study
from ganlab.errors import UsageError
from ganlab.study.objective import LEGACY_PRUNE_PROXY
from ganlab.study.spec import StudySpec

__all__ = ["agree_on_pruning", "best_trials", "dashboard_command", "dashboard_hint", "default_storage", "is_journal",
           "load_existing_study", "make_pruner", "make_sampler",
           "open_journal", "open_storage", "redact", "scrub"]


def default_storage(out: str) -> str:
    return f"sqlite:///{Path(out).expanduser().resolve() / 'studies.db'}"


def open_storage(url: str, spec: StudySpec | None = None):
    shown = redact(url)  # every message names the storage without its password
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
            raise UsageError(f"--storage {shown}: cannot create {path.parent} ({exc.strerror})") from None
        if path.exists() and path.stat().st_size and path.read_bytes()[:16] != b"SQLite format 3\x00":
            raise UsageError(f"--storage {shown}: {path} is not a SQLite database; point --storage at another file")
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
        from sqlalchemy.exc import IntegrityError, ProgrammingError  # the driver of Optuna's RDB storage

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
        raise UsageError(f"--storage {shown}: the database driver is missing ({exc.name or exc}); {hint}") from None
    except Exception as exc:  # sqlalchemy's OperationalError and friends
        first = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, url)
        raise UsageError(f"--storage {shown}: cannot open the study storage ({first[:200]}); "
                         f"check the URL, that the server is up and reachable") from None


def is_journal(url: str) -> bool:
    """``journal:///path/study.log`` or a plain path ending in ``.log``: Optuna's JournalStorage
    on a JournalFileBackend, the storage Optuna advises for many workers on one machine."""
    return url.startswith("journal://") or ("://" not in url and url.endswith(".log"))


def open_journal(url: str):
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


def redact(url: str) -> str:
    """The storage URL without its password (``postgresql://user@host/db``), for every message."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}@{host}"
    return url


def password_of(url: str) -> str | None:
    if "@" in url and "://" in url:
        creds = url.split("://", 1)[1].rsplit("@", 1)[0]
        if ":" in creds:
            return creds.split(":", 1)[1] or None
    return None


def scrub(text: str, url: str) -> str:
    """``text`` (a driver's or Optuna's message, which may quote the URL) with the URL redacted
    and its password, also URL-decoded, replaced by ``***``."""
    from urllib.parse import unquote

    text = text.replace(url, redact(url))
    secret = password_of(url)
    for s in {secret, unquote(secret)} if secret else ():
        if s:
            text = text.replace(s, "***")
    return text


def dashboard_command(url: str, artifact_dir: str | Path | None = None) -> str:
    """The command that opens a study's storage in optuna-dashboard (``pip install 'ganlab[dashboard]'``),
    with the folder of the sample grids ganlab uploads as artifacts. It reads the storage while
    workers write to it; a journal file is given by its path, as optuna-dashboard takes it."""
    import shlex

    if is_journal(url):
        target = str(Path(url[len("journal://"):] if url.startswith("journal://") else url).expanduser().resolve())
    else:
        target = redact(url)
    parts = ["optuna-dashboard", target]
    if artifact_dir is not None:
        parts += ["--artifact-dir", str(artifact_dir)]
    return " ".join(shlex.quote(x) for x in parts)


def dashboard_hint() -> str:
    """Where optuna-dashboard is not installed, how to install it."""
    import importlib.util

    return "" if importlib.util.find_spec("optuna_dashboard") else "  (pip install 'ganlab[dashboard]')"


def make_sampler(spec: StudySpec, seed: int | None):
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "tpe" or spec.scalarised:
        # TPE handles both one objective and several (MOTPE); conditional trick parameters
        # are searched jointly where they appear together. Optuna marks multivariate and group
        # "experimental" with a warning at every start; ganlab chose them, the user did not.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                              n_startup_trials=min(10, spec.population_size))
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=spec.population_size)


def make_pruner(spec: StudySpec):
    if spec.own_pruning:  # a Pareto study, or several seeds: ganlab's median rule (ganlab.study.pruning)
        return optuna.pruners.NopPruner()
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=spec.warmup)
    if spec.pruner == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=spec.eval_every)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=spec.eval_every, max_resource=spec.steps)
    return optuna.pruners.NopPruner()


def agree_on_pruning(study, spec: StudySpec, console) -> StudySpec:
    """Every worker of a study, and every continuation, reports the same metric to the pruner.

    The metric is kept in the study's user attributes. A study begun before they were kept
    pruned on ``prune_on`` or else ``val/L1``; when it holds intermediate values it goes on with
    that metric, since the pruner compares trials at the same step."""
    if not spec.scalarised:
        return spec
    label, _ = spec.pruning_target
    stored = study_record(study).prune_on
    if stored is None:
        if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
            stored = spec.prune_on or LEGACY_PRUNE_PROXY
        else:
            stored = label
        write_study(study, prune_on=stored)
    if stored != label:
        old = dataclasses.replace(spec, prune_on=stored)
        if old.pruning_target != spec.pruning_target:
            console.print(f"note: study {spec.name} was begun pruning on {old.pruning_target[0]}; it goes on with it "
                          f"(trials are compared step by step); use --name NEW for a study pruned on {label}",
                          highlight=False, markup=False)
        return old
    return spec


def load_existing_study(name: str, storage_arg: str | None, runs: str):
    """``--storage URL`` (or the default storage under ``--runs``) and study ``name`` in it, or
    one line saying what is there instead. Returns (study, storage, url)."""
    url = storage_arg or default_storage(runs)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        raise UsageError(f"--storage {redact(url)}: no such study file; run ganlab study first, or give --storage/--runs")
    storage = open_storage(url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=name, storage=storage), storage, url
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise UsageError(f"study {name}: not in {redact(url)}; studies there: {', '.join(names) or 'none'}") from None


def best_trials(study):
    """The Pareto front of a two-objective study, the best trial of one; none before any finished."""
    try:
        if len(study.directions) > 1:
            return study.best_trials
        return [study.best_trial]
    except ValueError:
        return []
