"""Running a study: each trial trains an ordinary ganlab run folder and reports its objectives;
``run_study`` opens (or continues) the study in its storage and runs this worker's trials."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from rich.console import Console
from rich.live import Live
from torch.utils.tensorboard import SummaryWriter

from ganlab.config import TrainConfig, TrickSpec
from ganlab.data import build_datasets
from ganlab.errors import GanlabError, UsageError
from ganlab.evaluate import fid_entry_for_run
from ganlab.io import atomic_write_json
from ganlab.metrics.inception import WeightsUnavailable, find_inception_weights, inception_identity
from ganlab.metrics.scripted import FLAG as FID_FEATURES_FLAG
from ganlab.metrics.scripted import load_torchscript_features
from ganlab.metrics.stability import instability_from_run
from ganlab.runtime import runtime_for
from ganlab.study.objective import INLOOP_METRICS, OBJECTIVES, WEIGHTED, describe_pruning, inloop_value, objective_values, scalar_for_pruning
from ganlab.study.recovery import RESUME_ATTR, WORKER_ATTR, recover_dead_trials, requeue, stamp_worker
from ganlab.study.space import sample_trial
from ganlab.study.spec import StudySpec
from ganlab.study.storage import (agree_on_pruning, best_trials, dashboard_command, dashboard_hint, make_pruner, make_sampler,
                                  open_storage, redact)
from ganlab.study.table import fmt, trial_cells, trials_table
from ganlab.study.workers import Workers, shares
from ganlab.train import Diverged, train
from ganlab.errors import Stopped
from ganlab.train.memory import check_fits
from ganlab.trick import TrickStack, build_trick

__all__ = ["FidNetwork", "StudyRunner", "check_inception", "run_study"]


@dataclass(frozen=True)
class FidNetwork:
    """The feature network a study's ``fid`` objective uses: the text every FID carries, and the
    SHA-256 of its file (Inception's weights or a ``--fid-features`` TorchScript file)."""

    implementation: str
    sha256: str


@dataclass
class StudyRunner:
    spec: StudySpec
    storage_url: str
    out: Path
    overrides: dict[str, Any]
    seed: int | None
    console: Any
    inception_weights: str | None = None
    fid_features: str | None = None
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
        key = (cfg.data, cfg.val_data, cfg.data_a, cfg.data_b, cfg.val_data_a, cfg.val_data_b, cfg.task, cfg.direction,
               cfg.size, cfg.effective_load_size, cfg.seed, cfg.val_split)
        with self._lock:
            if key not in self._datasets:
                self._datasets[key] = build_datasets(cfg, lambda m: None)
            return self._datasets[key]

    def __call__(self, trial) -> list[float]:
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
            trial.set_user_attr("gan_mode", cfg.gan_mode)  # the report's L1-only control row reads it
            TrickStack([build_trick(n, v) for n, v in tricks], cfg.gan_mode)
            check_fits(cfg, runtime_for(cfg))  # a drawn batch or width that cannot fit
        except UsageError as exc:
            # An impossible combination is never trained: the trial is pruned with its reason.
            trial.set_user_attr("refused", str(exc))
            raise optuna.TrialPruned(f"refused: {exc}") from None
        log = io.StringIO()
        console = Console(file=log, width=120, soft_wrap=True)

        def on_eval(step: int, metrics: dict[str, float]) -> None:
            trial.set_user_attr("last_eval_step", step)
            if self.spec.scalarised and len(trial.study.directions) == 1:
                value = scalar_for_pruning(self.spec, metrics)
                if value is not None and math.isfinite(value):
                    trial.report(value, step)
                    if trial.should_prune():
                        label, is_objective = self.spec.pruning_target
                        # Optuna stores the last reported value as the pruned trial's value; these
                        # say what it is, so that no table shows a proxy under the objective's name.
                        trial.set_user_attr("pruned_step", step)
                        trial.set_user_attr("pruned_on", label)
                        trial.set_user_attr("pruned_on_objective", is_objective)
                        trial.set_user_attr("pruned_value", inloop_value(label, metrics) if label in INLOOP_METRICS else value)
                        raise optuna.TrialPruned(f"pruned at step {step} on {label} = {value:.4g}")

        run_dir = None
        resume = self._resumable(trial)
        if resume is not None:  # a trial stopped by a signal: its retry continues its run folder
            cfg = TrainConfig.from_dict(json.loads((resume / "config.json").read_text()), str(resume / "config.json"))
        try:
            result = train(cfg, on_eval=on_eval, console=console, progress=False, datasets=self.datasets(cfg),
                           on_start=lambda d: self._started(trial, d), resume=resume)
            run_dir = result.run_dir
        except Stopped as exc:
            # SIGINT/SIGTERM: the run saved its step; the trial is failed (by Optuna, as the
            # exception leaves) and queued again now, to continue from that checkpoint
            trial.set_user_attr("stopped_step", exc.step)
            trial.set_user_attr("reason", str(exc))
            if exc.step is not None and exc.run_dir is not None:
                requeue(trial.study, trial.study._storage.get_trial(trial._trial_id), self.spec,
                        resume_from=str(exc.run_dir))
            raise Stopped(exc.signum, exc.run_dir, exc.step, saved=exc.saved, trial=trial.number) from None
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
            metrics["fid"] = self.fid(run_dir, trial=trial, device=cfg.device)
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

    @staticmethod
    def _resumable(trial) -> Path | None:
        """The run folder a retried trial continues (one a signal stopped), if it has a checkpoint."""
        folder = trial.study._storage.get_trial_system_attrs(trial._trial_id).get(RESUME_ATTR)
        if not folder:
            return None
        folder = Path(folder)
        return folder if (folder / "config.json").is_file() and any((folder / "checkpoints").glob("step-*.pt")) else None

    def _started(self, trial, run_dir: Path) -> None:
        trial.set_user_attr("run_dir", str(run_dir))
        atomic_write_json(run_dir / "trial.json", {"study": self.spec.name, "trial": trial.number,
                                                   "storage": redact(self.storage_url)})

    def fid(self, run_dir: Path, trial=None, device: str = "auto") -> float:
        """The run's FID with the study's feature network; the trial records which network and N."""
        entry = fid_entry_for_run(run_dir, inception_weights=self.inception_weights, fid_features=self.fid_features,
                                  device=device)
        if trial is not None:
            trial.set_user_attr("fid_implementation", entry["implementation"])
            trial.set_user_attr("fid_n", entry["n"])
        return float(entry["value"])

    def _attach(self, trial, run_dir: Path, cfg, metrics, instability: float, values) -> None:
        """HParams for TensorBoard, and the sample grid as an Optuna artifact."""
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
                store_dir = self.out / self.spec.name / "artifacts"
                store_dir.mkdir(parents=True, exist_ok=True)
                upload_artifact(artifact_store=FileSystemArtifactStore(str(store_dir)), file_path=str(samples[-1]), study_or_trial=trial)
            except Exception as exc:  # an artifact is a convenience; the run folder holds the grid anyway
                trial.set_user_attr("artifact_error", str(exc)[:200])


def check_inception(spec: StudySpec, path: str | None, fid_features: str | None = None) -> FidNetwork | None:
    """Before any trial: the feature networks the objectives need are here and work (one line
    when not). Returns the network of the ``fid`` objective (None without one): the TorchScript
    file ``fid_features`` (loaded and probed) in place of Inception, else Inception's weights."""
    needs = {o for o in spec.objectives if OBJECTIVES[o].needs_inception}
    if fid_features is not None and "fid" not in needs:
        raise UsageError(f"{FID_FEATURES_FLAG} {fid_features}: study {spec.name} has no fid objective "
                         f"(objectives: {', '.join(spec.objectives)}); drop the flag or add fid to [study].objectives")
    if "kid" in needs:
        try:
            find_inception_weights(path)  # raises the one-line message when absent offline
        except WeightsUnavailable as exc:
            if fid_features is None:
                raise
            raise WeightsUnavailable(f"{exc}; {FID_FEATURES_FLAG} serves the fid objective only: the kid objective is "
                                     "measured during training, with Inception") from None
    if "fid" not in needs:
        return None
    if fid_features is not None:
        size = dict(spec.train).get("size", TrainConfig.__dataclass_fields__["size"].default)
        extractor = load_torchscript_features(fid_features, device="cpu", probe_size=int(size))
        return FidNetwork(extractor.implementation, extractor.sha256)
    try:
        implementation, digest = inception_identity(path)
    except WeightsUnavailable as exc:
        raise WeightsUnavailable(f"{exc}; or score fid with a feature network of your own: {FID_FEATURES_FLAG} FILE "
                                 "(TorchScript; its FIDs do not compare with Inception's)") from None
    return FidNetwork(implementation, digest)


def agree_on_fid_network(study, spec: StudySpec, network: FidNetwork | None, storage_url: str) -> None:
    """A study's FIDs all come from one feature network: the first worker records it in the study's
    user attributes (``fid_implementation``, ``fid_network_sha256``); a continuation with another
    network is refused with one line. Each trial records its own as ``fid_implementation`` too."""
    if network is None:
        return
    stored = study.user_attrs.get("fid_network_sha256")
    if stored is None:
        study.set_user_attr("fid_network_sha256", network.sha256)
        study.set_user_attr("fid_implementation", network.implementation)
    elif stored != network.sha256:
        before = study.user_attrs.get("fid_implementation", f"a network with sha256 {stored[:16]}")
        raise UsageError(f"study {spec.name} in {redact(storage_url)} scores fid with {before}; this worker would use "
                         f"{network.implementation}, and FIDs of different feature networks do not compare; give the "
                         f"same network to continue, or --name NEW to start another study")


def run_study(spec: StudySpec, *, storage_url: str, out: Path, overrides: dict[str, Any], seed: int | None,
              n_trials: int | None, timeout: float | None, n_jobs: int, inception_weights: str | None,
              console: Console, storage_flag: str, fid_features: str | None = None,
              fid_network: FidNetwork | None = None,
              worker_argv: Callable[[int, int | None], Sequence[str]] | None = None) -> int:
    """Open (or continue) ``spec`` in its storage, run this worker's trials with the live table,
    and print the summary, the best trials and the follow-up commands.

    ``n_jobs > 1`` runs the trials in that many processes (:mod:`ganlab.study.workers`):
    ``worker_argv(k, trials)`` is the ``ganlab`` command line of extra worker ``k``."""
    if n_jobs > 1 and worker_argv is None:
        raise UsageError("n_jobs > 1 runs trials in worker processes; give worker_argv (the ganlab study command line)")
    # Refuse a bad [train] table before any trial: resolve the base configuration once.
    runner = StudyRunner(spec, storage_url, out, overrides, seed, console, inception_weights, fid_features)
    if fid_network is None and "fid" in spec.objectives:
        fid_network = check_inception(spec, inception_weights, fid_features)
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
        raise UsageError(f"study {spec.name} in {redact(storage_url)} was created from a different definition; "
                         f"use --name NEW to start another study, or the original file to continue")
    agree_on_fid_network(study, spec, fid_network, storage_url)
    spec = agree_on_pruning(study, spec, console)
    revived = recover_dead_trials(study, spec)
    if revived:
        console.print(f"trial(s) {', '.join(map(str, revived))}: their worker died; marked failed and queued again",
                      highlight=False)
    n_before = len(study.trials)
    trial_shares = shares(n_trials, n_jobs)
    # Every trial trains alone in its process (the torch generator behind dropout, and the
    # generators a checkpoint restores, are global to a process): N jobs are N processes.
    workers = Workers(worker_argv, trial_shares, out / spec.name) if n_jobs > 1 else None
    n_trials = trial_shares[0]
    console.print(f"[bold]ganlab study[/] {spec.name}: {', '.join(spec.objectives)}"
                  f"{' (weighted)' if spec.weights else ''}, sampler {spec.sampler if not spec.scalarised or spec.sampler != 'nsga2' else 'tpe'}, "
                  f"pruner {spec.pruner}"
                  f"{' ' + describe_pruning(spec) if spec.pruner != 'none' and spec.scalarised else ''}, "
                  f"{spec.steps} steps per trial; storage {redact(storage_url)} "
                  f"({n_before} trials so far); runs in {out / spec.name}"
                  f"{f'; {n_jobs} worker processes' if workers else ''}", highlight=False)
    artifacts = (out / spec.name / "artifacts").resolve()  # where _attach uploads the sample grids
    console.print(f"watch it live: {dashboard_command(storage_url, artifacts)}{dashboard_hint()}", highlight=False,
                  markup=False)
    t0 = time.time()
    try:
        _optimize(study, runner, spec, console, n_trials, timeout)
    except BaseException:
        if workers is not None:  # a stop (Ctrl-C, SIGTERM) reaches every worker, each saves its trial
            workers.signal(signal.SIGTERM)
            workers.wait()
        raise
    pids = {os.getpid()}
    if workers is not None:
        for problem in workers.wait():
            console.print(f"[yellow]warning:[/] {problem}", highlight=False)
        pids |= workers.pids
        recover_dead_trials(study, spec)
        # the trials every worker of this command ran, by the stamp each left on its trials
        runner.ran.extend(t.number for t in study.get_trials(deepcopy=False)
                          if isinstance(t.user_attrs.get(WORKER_ATTR), dict) and t.user_attrs[WORKER_ATTR].get("pid") in pids)
    return _summary(study, runner, spec, console, out, storage_flag, t0)


def _optimize(study, runner: StudyRunner, spec: StudySpec, console: Console, n_trials: int | None,
              timeout: float | None) -> None:
    """This process's trials, one at a time, with the live table (or a line per trial in a log)."""
    n_jobs = 1
    if console.is_terminal:
        with Live(trials_table(study, spec), console=console, refresh_per_second=2, transient=False) as live:
            def refresh(study, trial) -> None:
                recover_dead_trials(study, spec)  # a worker that died meanwhile: its trial is queued again
                live.update(trials_table(study, spec))

            study.optimize(runner, n_trials=n_trials, timeout=timeout, n_jobs=n_jobs, callbacks=[refresh],
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

        study.optimize(runner, n_trials=n_trials, timeout=timeout, n_jobs=n_jobs, callbacks=[log_trial],
                       catch=(GanlabError,), gc_after_trial=True)
        wide = Console(file=console.file, width=max(console.width, 160), soft_wrap=True, color_system=None)
        wide.print(trials_table(study, spec))


def _summary(study, runner: StudyRunner, spec: StudySpec, console: Console, out: Path, storage_flag: str,
             t0: float) -> int:
    by_number = {t.number: t for t in study.trials}
    # The trials this worker ran, counted by number: a retried trial (queued before n_before) too.
    done = [by_number[n] for n in sorted(set(runner.ran)) if n in by_number]
    counts: dict[str, int] = {}
    for t in done:
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    console.print(f"{len(done)} trial(s) in {time.time() - t0:.0f} s ({', '.join(f'{v} {k}' for k, v in counts.items())}); "
                  f"the study holds {len(study.trials)}", highlight=False)
    best = best_trials(study)
    if best:
        label = "Pareto front" if len(spec.directions) > 1 else "best trial"
        console.print(f"{label}: " + "; ".join(
            f"#{t.number} [{', '.join(t.user_attrs.get('tricks', [])) or 'no tricks'}] "
            + " ".join(f"{n}={fmt(v)}" for n, v in zip(study.user_attrs.get('objectives', []), t.values))
            for t in best), highlight=False, markup=False)
    console.print(f"report: ganlab report {spec.name}{storage_flag}", highlight=False)
    console.print(f"compare the trials: tensorboard --logdir {out / spec.name}", highlight=False)
    console.print(f"dashboard: {dashboard_command(runner.storage_url, (out / spec.name / 'artifacts').resolve())}"
                  f"{dashboard_hint()}", highlight=False, markup=False)
    return 0
