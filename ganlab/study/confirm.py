"""The confirmation stage of a study (``ganlab confirm NAME``): from search to evidence.

A search ranks configurations by runs of one seed (or a few), each trick on together with other,
randomly drawn tricks: screening, not evidence. A confirmation re-trains, over ``S`` fresh seeds
each (the same seeds for every arm, so that runs pair by seed):

- the chosen configurations (the Pareto front, or the best 3 of a one-objective study; ``--top N``);
- the plain pix2pix baseline (no tricks, the definition's ``[train]`` settings);
- the L1-only control (``gan_mode = "none"``), where the study's task allows it;
- for the best chosen configuration (the best first objective), a leave-one-out ablation: the same
  stack without each of its tricks in turn.

The runs are the trials of a sibling study ``NAME-confirm`` in the same storage, queued once with
their arm and seed; any number of workers (``ganlab confirm NAME`` again, on other machines with a
PostgreSQL storage) take them one at a time, and a killed worker's run is queued again, exactly
like a study's trials. The same command again continues it; with more ``--seeds`` it adds the
missing seeds to every arm. ``ganlab report NAME`` then opens with what the evidence supports
(:mod:`ganlab.study.evidence`).
"""

from __future__ import annotations

import dataclasses
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
from optuna.trial import TrialState
from rich.console import Console

from ganlab.study.record import ARM, study_record, trial_record, write_study
from ganlab.config import TrainConfig
from ganlab.errors import GanlabError, UsageError
from ganlab.losses import L1_ONLY
from ganlab.study.budget import shown
from ganlab.study.evidence import ALPHA, CONFIRM_SUFFIX, confirmation_of, seeds_for_verdict
from ganlab.study.objective import OBJECTIVES
from ganlab.study.recovery import recover_dead_trials
from ganlab.study.runner import StudyRunner, optimize_on
from ganlab.study.space import sample_trial
from ganlab.study.spec import StudySpec, parse_study
from ganlab.study.storage import redact
from ganlab.study.workers import Workers, plan_workers

__all__ = ["Arm", "CONFIRM_SUFFIX", "DEFAULT_SEEDS", "SEED_OFFSET", "confirmation_of", "declare", "margins", "plan_arms",
           "run_confirm", "run_plan", "undecided"]

DEFAULT_SEEDS = 10  # a family of 13 verdicts at 5% needs 10 seeds before the sign test can give any (evidence.py)
DEFAULT_TOP = 3  # a one-objective study: its best 3
SEED_OFFSET = 1000  # confirmation seeds: the definition's seed + 1000 + i, apart from the search's


@dataclass(frozen=True)
class Arm:
    label: str  # trial-12, baseline, l1-only, trial-12-without-label-flip
    kind: str  # chosen | baseline | control | ablation
    params: tuple[tuple[str, Any], ...]
    tricks: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
    trial: int | None = None  # the search trial it comes from
    without: str | None = None  # the trick an ablation arm drops
    alias_of: str | None = None  # an ablation arm whose configuration another arm already is (not run twice)

    def as_attr(self, seed: int) -> dict[str, Any]:
        return {"label": self.label, "kind": self.kind, "params": dict(self.params),
                "tricks": [[n, dict(v)] for n, v in self.tricks], "trial": self.trial, "without": self.without,
                "alias_of": self.alias_of, "seed": seed}

    def same_configuration(self, other: "Arm") -> bool:
        return (dict(self.params), [(n, dict(v)) for n, v in self.tricks]) == (
            dict(other.params), [(n, dict(v)) for n, v in other.tricks])


def _finished(study) -> list:
    return [t for t in shown(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) if t.values]


def _dominates(a: Sequence[float], b: Sequence[float], signs: Sequence[float]) -> bool:
    return all(s * x <= s * y for x, y, s in zip(a, b, signs)) and any(s * x < s * y for x, y, s in zip(a, b, signs))


def choose(study, top: int | None) -> list:
    """The configurations to confirm: the Pareto front (two objectives) or the best 3 (one), or
    the ``top`` first in the order of non-dominated fronts, each by its first objective."""
    trials = _finished(study)
    signs = [1.0 if d.name == "MINIMIZE" else -1.0 for d in study.directions]
    ordered, rest = [], list(trials)
    while rest:
        front = [t for t in rest if not any(_dominates(o.values, t.values, signs) for o in rest if o is not t)]
        front.sort(key=lambda t: signs[0] * t.values[0])
        ordered.append(front)
        rest = [t for t in rest if t not in front]
    flat = [t for front in ordered for t in front]
    if top is not None:
        return flat[:top]
    if len(study.directions) > 1:
        return ordered[0] if ordered else []
    return flat[:DEFAULT_TOP]


def _configuration(spec: StudySpec, trial) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """A search trial's configuration, drawn again from its parameters (the same define-by-run)."""
    return sample_trial(spec, optuna.trial.FixedTrial(trial.params, trial.number))


def _arm(label: str, kind: str, base: dict, tricks: list, trial: int | None = None, without: str | None = None) -> Arm:
    return Arm(label, kind, tuple(sorted(base.items())), tuple((n, tuple(sorted(v.items()))) for n, v in tricks),
               trial, without)


def plan_arms(study, spec: StudySpec, top: int | None, base_config: dict[str, Any]) -> tuple[list[Arm], list[str]]:
    """The arms of the confirmation, and notes on what was left out and why."""
    notes: list[str] = []
    baseline = _arm("baseline", "baseline", {}, [])
    arms: list[Arm] = []
    if spec.arms:  # the definition's fixed arms, in its order; no search, so no ablation either
        if top is not None:
            raise UsageError(f"study {study.study_name} compares the fixed arms of its definition; --top chooses among "
                             f"searched trials: leave it out")
        arms = [Arm(label, "chosen", settings, tricks) for label, settings, tricks in spec.arms]
        chosen = []
    else:
        chosen = choose(study, top)
        if not chosen:
            raise UsageError(f"study {study.study_name}: no finished trial to confirm; run ganlab study first")
    for t in chosen:
        base, tricks = _configuration(spec, t)
        arm = _arm(f"trial-{t.number}", "chosen", base, tricks, t.number)
        if arm.same_configuration(baseline):
            notes.append(f"trial {t.number} is the baseline's configuration: confirmed as the baseline")
            continue
        arms.append(arm)
    plain = [baseline]
    if not spec.control:
        notes.append("no L1-only control: the definition sets study.control = false")
    else:
        try:
            TrainConfig.from_dict({**base_config, "gan_mode": L1_ONLY, "tricks": ()}, "the L1-only control").validate()
            plain.append(_arm("l1-only", "control", {"gan_mode": L1_ONLY}, []))
        except UsageError as exc:
            notes.append(f"no L1-only control: {exc}")
    out = [*arms, *plain]
    if arms and not spec.arms:
        best = arms[0]  # the first chosen: the best first objective
        tricks = [(n, dict(v)) for n, v in best.tricks]
        for name, _ in tricks:
            rest = [(n, v) for n, v in tricks if n != name]
            arm = _arm(f"{best.label}-without-{name}", "ablation", dict(best.params), rest, best.trial, name)
            same = next((a for a in out if a.alias_of is None and a.same_configuration(arm)), None)
            out.append(arm if same is None else dataclasses.replace(arm, alias_of=same.label))
    return out, notes


def _family_size(plan: list[dict], objectives: Sequence[str], primary: bool) -> int:
    """How many hypotheses the report of this plan decides: every compared arm on every objective
    (the L1-only control's instability is not comparable; an ablation whose stack without the trick
    is the baseline repeats the configuration against the baseline), less the primary comparison."""
    arms = [a for a in plan if a.get("kind") in ("chosen", "control")
            or (a.get("kind") == "ablation" and a.get("alias_of") != "baseline")]  # that one repeats a chosen one
    m = sum(len(objectives) - (1 if a.get("kind") == "control" and "instability" in objectives else 0) for a in arms)
    return max(1, m - (1 if primary else 0))


def _planned(confirm) -> set[tuple[str, int]]:
    return {(trial_record(t).arm["label"], int(trial_record(t).arm["seed"]))
            for t in confirm.get_trials(deepcopy=False) if isinstance(trial_record(t).arm, dict)}


def _open(storage, parent, spec: StudySpec, top: int | None, n_seeds: int, base_config: dict,
          console: Console, settings: dict | None = None, primary: bool = False,
          equivalence: dict[str, float] | None = None, looks: Sequence[int] = ()) -> tuple[Any, list[dict], list[str]]:
    name = parent.study_name + CONFIRM_SUFFIX
    directions = [OBJECTIVES[o].direction for o in spec.objectives]
    confirm = optuna.create_study(study_name=name, storage=storage, directions=directions,
                                  sampler=optuna.samplers.RandomSampler(seed=0), pruner=optuna.pruners.NopPruner(),
                                  load_if_exists=True)  # every planned run is trained to its end
    notes: list[str] = []
    plan = study_record(confirm).plan
    if plan is None:
        arms, notes = plan_arms(parent, spec, top, base_config)
        plan = [a.as_attr(seed=-1) for a in arms]
        write_study(confirm, plan=plan, top=top, parent=parent.study_name, objectives=list(spec.objectives), notes=notes,
                    settings=settings or {})
    elif top is not None and study_record(confirm).top != top:
        raise UsageError(f"{name} was planned with --top {study_record(confirm).top or 'default'}; continue it "
                         f"without --top (or the same), or delete it from the storage to plan again")
    declare(confirm, primary, equivalence or {}, looks)
    base_seed = int(base_config.get("seed", 0) or 0)
    seeds = [base_seed + SEED_OFFSET + i for i in range(n_seeds)]
    have = _planned(confirm)
    for seed in seeds:  # seed by seed: the first finished runs already pair
        for arm in plan:
            if not arm.get("alias_of") and (arm["label"], seed) not in have:
                confirm.enqueue_trial({}, user_attrs={ARM: {**arm, "seed": seed}})
    stored_notes = study_record(confirm).notes
    return confirm, plan, stored_notes if stored_notes is not None else notes


def declare(confirm, primary: bool, equivalence: dict[str, float], looks: Sequence[int] = ()) -> None:
    """Record the primary comparison, the equivalence margins and a sequential confirmation's looks
    with the confirmation, before its results decide anything: once declared they stay (a margin
    chosen after the data is no margin, a schedule of looks chosen after a look is no schedule)."""
    name = confirm.study_name
    if looks:
        have_looks = [int(n) for n in study_record(confirm).looks or []]
        if have_looks and have_looks != list(looks):
            raise UsageError(f"{name} is sequential with looks at {', '.join(map(str, have_looks))} seeds; continue it "
                             f"with the same --seeds and --max-seeds")
        if not have_looks:
            if _finished_runs(confirm):
                raise UsageError(f"{name} already has finished runs: --until-decided is declared before any result "
                                 f"(plan a new confirmation to run one)")
            write_study(confirm, looks=list(looks))
    if primary and not study_record(confirm).primary:
        if _finished_runs(confirm):
            raise UsageError(f"{name} already has finished runs: a primary comparison is declared before any result "
                             f"(plan a new confirmation to declare one)")
        write_study(confirm, primary=True)
    have = dict(study_record(confirm).equivalence or {})
    for objective, margin in equivalence.items():
        if objective in have and float(have[objective]) != float(margin):
            raise UsageError(f"{name} was declared with --equivalence {objective}={have[objective]:g}; a margin "
                             f"cannot change once declared (give the same or none)")
        if objective not in have and _finished_runs(confirm):
            raise UsageError(f"{name} already has finished runs: --equivalence {objective}={margin:g} must be declared "
                             f"before any result (plan a new confirmation to declare one)")
        have[objective] = float(margin)
    if have != (study_record(confirm).equivalence or {}):
        write_study(confirm, equivalence=have)


def _finished_runs(confirm) -> bool:
    return any(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in confirm.get_trials(deepcopy=False))


def parent_spec(parent) -> StudySpec:
    definition = study_record(parent).definition
    if not definition:
        raise UsageError(f"study {parent.study_name}: its definition is not in the storage; run it with ganlab study")
    spec = parse_study(definition, f"study {parent.study_name}", parent.study_name)
    return dataclasses.replace(spec, name=parent.study_name)


def margins(spec: StudySpec, given: Sequence[str], flag: str = "--equivalence") -> dict[str, float]:
    """``--equivalence [OBJECTIVE=]D`` (or ``--effect``) values by objective (the first objective
    where none is named)."""
    out: dict[str, float] = {}
    for text in given:
        name, _, value = text.rpartition("=")
        name = name or spec.objectives[0]
        if name not in spec.objectives:
            raise UsageError(f"{flag} {text}: {name} is not an objective of the study "
                             f"({', '.join(spec.objectives)}); give OBJECTIVE=D")
        try:
            d = float(value)
        except ValueError:
            raise UsageError(f"{flag} {text}: D must be a number in {name}'s units, e.g. {name}=2.5") from None
        if not (d > 0 and d < float("inf")):
            raise UsageError(f"{flag} {text}: D must be a positive finite number in {name}'s units")
        out[name] = d
    return out


def undecided(parent) -> int:
    """How many verdicts of ``parent``'s sequential confirmation are still undecided (neither
    helps, hurts nor an equivalence)."""
    from ganlab.study.evidence import HELPS, HURTS, arm_runs, decide_sequential
    from ganlab.study.objective import DIVERGED_INSTABILITY

    confirm = confirmation_of(parent)
    if confirm is None:
        return 0
    record = study_record(confirm)
    objectives = list(record.objectives or [])
    directions = [d.name.lower() for d in confirm.directions]
    looks = [int(n) for n in record.looks or []]
    rows, _, _ = decide_sequential(arm_runs(confirm, objectives, DIVERGED_INSTABILITY), objectives, directions, looks,
                                   primary=bool(record.primary),
                                   margins={k: float(v) for k, v in (record.equivalence or {}).items()})
    return sum(1 for _, _, by in rows for e in by.values() if e.role and not (
        e.verdict in (HELPS, HURTS) or e.verdict.startswith("no effect larger")))


def run_plan(parent, *, effects: Sequence[str], console: Console) -> int:
    """``ganlab confirm NAME --plan``: from the runs so far, the smallest effect the seeds detect and
    the seeds an effect needs; trains nothing."""
    from ganlab.study.evidence import arm_runs, comparisons, plan_lines
    from ganlab.study.objective import DIVERGED_INSTABILITY

    spec = parent_spec(parent)
    confirm = confirmation_of(parent)
    if confirm is None or not study_record(confirm).plan:
        raise UsageError(f"study {parent.study_name} has no confirmation yet; run ganlab confirm {parent.study_name} "
                         f"(a few seeds are enough to measure the spread), then --plan")
    objectives = list(study_record(confirm).objectives or spec.objectives)
    directions = [d.name.lower() for d in confirm.directions]
    rows = comparisons(arm_runs(confirm, objectives, DIVERGED_INSTABILITY), objectives, directions)
    asked = margins(dataclasses.replace(spec, objectives=tuple(objectives)), effects, "--effect")
    console.print("\n".join(plan_lines(rows, objectives, primary=bool(study_record(confirm).primary),
                                       effects=asked)), highlight=False, markup=False)
    return 0


def run_confirm(parent, *, storage, storage_url: str, out: Path, top: int | None, n_seeds: int, overrides: dict,
                console: Console, n_jobs: int | str = 1, storage_flag: str = "",
                worker_argv: Callable[[int], Sequence[str]] | None = None, threads: int | None = None,
                primary: bool = False, equivalence: Sequence[str] = (), looks: Sequence[int] = ()) -> int:
    """Plan (or continue) the confirmation of ``parent`` and run this worker's share of it, in
    ``n_jobs`` processes (``"auto"``: :func:`ganlab.study.workers.plan_workers`), each with ``threads``
    CPU threads (None: its share of the cores). ``primary``, ``equivalence`` and ``looks`` are
    declared with the confirmation before its first result (:func:`declare`)."""
    spec = parent_spec(parent)
    stored = study_record(parent).overrides or {}
    overrides = {**stored, **overrides}
    cspec = dataclasses.replace(spec, name=parent.study_name + CONFIRM_SUFFIX, weights=(), seeds=1, pruner="none",
                                trials=None)
    runner = StudyRunner(cspec, storage_url, out, overrides, None, console, fixed=True)
    base = runner.base_config()
    base_cfg = TrainConfig.from_dict({**base, "out": str(out / cspec.name)}, f"study {spec.name}").validate()
    settings = {k: getattr(base_cfg, k, None) for k in ("steps", "size", "ngf", "ndf", "batch_size")}
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    confirm, plan, notes = _open(storage, parent, spec, top, n_seeds, base, console, settings, primary,
                                 margins(spec, equivalence), looks)
    revived = recover_dead_trials(confirm, cspec, out / cspec.name)
    if revived:
        console.print(f"run(s) {', '.join(map(str, revived))}: their worker died; queued again", highlight=False)
    waiting = confirm.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    run_arms = [a for a in plan if not a.get("alias_of")]
    arms = ", ".join(a["label"] for a in run_arms)
    console.print(f"[bold]ganlab confirm[/] {parent.study_name}: {len(run_arms)} arms ({arms}) x {n_seeds} seeds, "
                  f"{spec.steps} steps each; {len(waiting)} runs to go; storage {redact(storage_url)} as "
                  f"{cspec.name}; runs in {out / cspec.name}", highlight=False)
    for note in notes:
        console.print(f"note: {note}", highlight=False)
    family = _family_size(plan, spec.objectives, bool(study_record(confirm).primary))
    need = seeds_for_verdict(ALPHA / family)
    if n_seeds < need:
        console.print(f"note: with {n_seeds} seeds no verdict is possible: {family} comparisons at {ALPHA:.0%} "
                      f"family-wise (Holm) need at least {need} seeds, every one on the same side; --seeds {need} or "
                      f"more (docs/statistics.md)", highlight=False)
    t0 = time.time()
    workers = None
    if waiting:
        # the workers and their share of the cores, set in this process before its first run
        plan = plan_workers(n_jobs, threads, base_cfg, len(waiting))
        if plan.n_jobs > 1 and worker_argv is None:
            raise UsageError("n_jobs > 1 runs in worker processes; give worker_argv (the ganlab confirm command line)")
        if plan.devices[0] is not None:  # one GPU per worker: this process takes the first
            runner.overrides = {**runner.overrides, "device": plan.devices[0]}
        console.print(plan.describe(), highlight=False, markup=False)
        workers = Workers(lambda k, _: worker_argv(k), [None] * plan.n_jobs, out / cspec.name, plan) if plan.n_jobs > 1 else None

        def stop_when_done(study, trial) -> None:
            recover_dead_trials(study, cspec, out / cspec.name)
            if not trial_record(trial).discarded:
                arm = trial_record(trial).arm or {}
                console.print(f"{arm.get('label', '?')} seed {arm.get('seed', '?')}: {trial.state.name.lower()}"
                              + (f" {', '.join(f'{n} {v:.4g}' for n, v in zip(spec.objectives, trial.values))}"
                                 if trial.values else ""), highlight=False, markup=False)
            if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                study.stop()

        try:
            optimize_on(confirm, runner, console, None, callbacks=[stop_when_done], catch=(GanlabError,), gc_after_trial=True)
        except BaseException:
            if workers is not None:
                workers.signal(signal.SIGTERM)
                workers.wait()
            raise
        if workers is not None:
            for problem in workers.wait():
                console.print(f"[yellow]warning:[/] {problem}", highlight=False)
            recover_dead_trials(confirm, cspec, out / cspec.name)
    runs = [t for t in shown(confirm.get_trials(deepcopy=False)) if isinstance(trial_record(t).arm, dict)]
    states: dict[str, int] = {}
    for t in runs:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    seconds = sum(float(trial_record(t).seconds or 0.0) for t in runs)
    console.print(f"{len(runs)} runs ({', '.join(f'{v} {k}' for k, v in sorted(states.items()))}); this worker "
                  f"{time.time() - t0:.0f} s; {seconds:.0f} s of training in all", highlight=False)
    console.print(f"report: ganlab report {parent.study_name}{storage_flag}", highlight=False)
    return 0
