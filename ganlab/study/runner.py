"""Running a study: each trial trains an ordinary ganlab run folder and reports its objectives;
``run_study`` opens (or continues) the study in its storage and runs this worker's trials."""

from __future__ import annotations

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
from optuna.trial import TrialState
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from rich.console import Console
from rich.live import Live
from torch.utils.tensorboard import SummaryWriter

from ganlab.study._optuna import frozen_trial, system_attrs
from ganlab.study.record import ARM, SEED_RUNS, study_record, trial_record, write_study, write_trial
from ganlab.config import TrainConfig, TrickSpec
from ganlab.data import build_datasets
from ganlab.errors import GanlabError, UsageError
from ganlab.evaluate import fid_entry_for_run
from ganlab.io import atomic_write_json
from ganlab.metrics.inception import WeightsUnavailable, find_inception_weights, inception_identity
from ganlab.metrics.scripted import FLAG as FID_FEATURES_FLAG
from ganlab.metrics.scripted import load_torchscript_features
from ganlab.metrics.stability import configuration_instability, instability_from_run
from ganlab.runtime import runtime_for
from ganlab.study.budget import BudgetSpent, budget_spent, counted, discard_if_over, shown
from ganlab.study.objective import (INLOOP_METRICS, OBJECTIVES, WEIGHTED, agree_on_stability, combined_objective_values,
                                    describe_pruning, mean_metrics, named_objective_values, seed_mean)
from ganlab.study.pruning import CURVE_ATTR, Pruning
from ganlab.study.recovery import RESUME_ATTR, inside, recover_dead_trials, requeue, stamp_worker

ARM_ATTR = ARM  # a confirmation's run: {"label", "params", "tricks", "seed"}
SEED_RUNS_ATTR = SEED_RUNS  # per seed: {"seed", "run_dir", "metrics", "objectives", ...} or its divergence
from ganlab.study.space import sample_trial
from ganlab.study.spec import StudySpec
from ganlab.study.storage import (agree_on_pruning, best_trials, dashboard_command, dashboard_hint, make_pruner, make_sampler,
                                  open_storage, redact)
from ganlab.study.table import fmt, trial_cells, trials_table
from ganlab.study.workers import Workers, plan_workers, shares
from ganlab.train import Diverged, train
from ganlab.errors import Stopped
from ganlab.train.checkpoint import checkpoint_bytes, slim_run
from ganlab.train.memory import check_fits
from ganlab.trick._registry import build_trick
from ganlab.trick._stack import TrickStack

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
    returned: int | None = None  # the last trial whose objective values this worker returned
    total_trials: int | None = None  # the study-wide budget (ganlab.study.budget)
    # Which trials this runner trains: a study's own (parameters drawn by the sampler), or a
    # confirmation's planned runs (``fixed``: each trial names its arm, configuration and seed).
    fixed: bool = False

    def base_config(self) -> dict[str, Any]:
        cfg = {k.replace("-", "_"): v for k, v in self.spec.train}
        cfg.update({"steps": self.spec.steps, "eval_every": self.spec.eval_every, "save_every": self.spec.steps})
        if self.spec.prune_on and "best_metric" not in cfg:  # the best checkpoint by what the study watches
            key = OBJECTIVES[self.spec.prune_on].metric if self.spec.prune_on in OBJECTIVES else self.spec.prune_on
            if key in INLOOP_METRICS:
                cfg["best_metric"] = key
        cfg.update(self.overrides)
        return cfg

    def datasets(self, cfg):
        """Decoded images are shared between the trials of this process (same data settings)."""
        key = (cfg.data, cfg.val_data, cfg.data_a, cfg.data_b, cfg.val_data_a, cfg.val_data_b, cfg.task, cfg.direction,
               cfg.size, cfg.effective_load_size, cfg.seed if cfg.split_seed is None else cfg.split_seed, cfg.val_split)
        with self._lock:
            if key not in self._datasets:
                self._datasets[key] = build_datasets(cfg, lambda m: None)
            return self._datasets[key]

    def _configure(self, trial) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
        if not self.fixed:
            return sample_trial(self.spec, trial)
        arm = trial_record(trial).arm
        if not isinstance(arm, dict):
            write_trial(trial, discarded="not a planned run of the confirmation")
            trial.study.stop()
            raise BudgetSpent(f"trial {trial.number}: every planned run of {self.spec.name} is taken")
        return dict(arm["params"]), [(n, dict(v)) for n, v in arm["tricks"]]

    def _seeds(self, trial, cfg: TrainConfig) -> list[int]:
        if self.fixed:
            return [int(trial_record(trial).arm["seed"])]
        return [(cfg.seed + k) % 2**32 for k in range(self.spec.seeds)]

    def __call__(self, trial) -> list[float]:
        stamp_worker(trial)  # first: a worker that dies from here on is found by recover_dead_trials
        discard_if_over(trial, self.total_trials)
        try:
            values = self._trial(trial)
            self.returned = trial.number  # what optimize_on reads when Optuna then cannot tell it
            return values
        except KeyboardInterrupt as exc:
            # Ctrl-C before a run's own handler is in place (reading the data, building the
            # networks) or between its seeds: the trial is queued again, never left failed and
            # lost. Its retry continues the run folder where one has a checkpoint, else starts
            # afresh (a seed it finished is kept).
            run_dir = getattr(exc, "run_dir", None)  # set by a run the interrupt stopped
            saved = run_dir is not None and any((Path(run_dir) / "checkpoints").glob("step-*.pt"))
            write_trial(trial, reason="interrupted (SIGINT)" + ("" if saved else " before its run saved a checkpoint"))
            self._queue_again(trial, str(run_dir) if saved else None)
            raise Stopped(signal.SIGINT, None, None, saved=False, trial=trial.number) from None

    def _queue_again(self, trial, resume_from: str | None) -> None:
        """A stopped trial queued once more (the storage's copy, with what it recorded)."""
        requeue(trial.study, frozen_trial(trial), self.spec, resume_from=resume_from)

    def _trial(self, trial) -> list[float]:
        with self._lock:
            self.ran.append(trial.number)
        t0 = time.time()
        base, tricks = self._configure(trial)
        write_trial(trial, tricks=[n for n, _ in tricks])
        cfg_dict = self.base_config()
        cfg_dict.update(base)
        cfg_dict["tricks"] = [TrickSpec(n, tuple(v.items())) for n, v in tricks]
        cfg_dict["name"] = self._run_name(trial)
        cfg_dict["out"] = str(self.out / self.spec.name)
        try:
            cfg = TrainConfig.from_dict(cfg_dict, f"study {self.spec.name}").validate()
            write_trial(trial, gan_mode=cfg.gan_mode)  # the report's L1-only control row reads it
            TrickStack([build_trick(n, v) for n, v in tricks], cfg.gan_mode)
            check_fits(cfg, runtime_for(cfg))  # a drawn batch or width that cannot fit
        except UsageError as exc:
            # An impossible combination is never trained: the trial is pruned with its reason.
            write_trial(trial, refused=str(exc))
            raise optuna.TrialPruned(f"refused: {exc}") from None
        seeds = self._seeds(trial, cfg)
        # the seeds of a trial share the validation split (that of the definition's seed)
        split = cfg.split_seed if cfg.split_seed is not None else cfg.seed
        # a retry keeps the seeds its first attempt finished (their results are in the trial)
        # (only records whose run folder lies in this study's runs folder: the storage is data)
        done = {r["seed"]: r for r in (trial_record(trial).seed_runs or [])
                if isinstance(r, dict) and r.get("seed") in seeds and isinstance(r.get("run_dir"), str)
                and inside(r["run_dir"], self.out / self.spec.name) is not None}
        pruning = Pruning(self.spec, trial)
        resume = self._resumable(trial)
        for k, seed in enumerate(seeds):
            if seed in done:
                pruning.add_finished(done[seed])
                continue
            seed_cfg = cfg.replace(seed=seed, split_seed=split, name=self._run_name(trial, seed if len(seeds) > 1 else None))
            folder = None
            stopped = json.loads((resume / "config.json").read_text()) if resume is not None else None
            if stopped is not None and stopped.get("seed") == seed:
                # a trial stopped by a signal: its retry continues the seed's run folder
                seed_cfg = TrainConfig.from_dict(stopped, str(resume / "config.json"))
                folder = resume
            record = self._run_seed(trial, seed_cfg, k, seed, pruning, folder, t0)
            done[seed] = record
            write_trial(trial, seed_runs=[done[s] for s in seeds if s in done])
            pruning.add_finished(record)
        return self._conclude(trial, cfg, [done[s] for s in seeds], pruning, t0)

    def _run_name(self, trial, seed: int | None = None) -> str:
        if self.fixed:
            arm = trial_record(trial).arm
            return f"{self.spec.name}-{arm['label']}-s{arm['seed']}"
        return f"{self.spec.name}-t{trial.number:04d}" + (f"-s{seed}" if seed is not None else "")

    def _run_seed(self, trial, cfg: TrainConfig, k: int, seed: int, pruning: "Pruning", resume: Path | None,
                  t0: float) -> dict[str, Any]:
        """Train one seed of the trial; its record (seed, run folder, metrics or divergence)."""
        log = io.StringIO()
        console = Console(file=log, width=120, soft_wrap=True)

        def on_eval(step: int, metrics: dict[str, float]) -> None:
            write_trial(trial, last_eval_step=step)
            pruning.evaluated(k, step, metrics)

        folder: dict[str, Path] = {}  # the seed's run folder, once train() has made it

        def on_start(run_dir: Path) -> None:
            folder["run_dir"] = run_dir
            self._started(trial, run_dir, seed)

        try:
            result = train(cfg, on_eval=on_eval, console=console, progress=False, datasets=self.datasets(cfg),
                           on_start=on_start, resume=resume)
        except Stopped as exc:
            # SIGINT/SIGTERM: the run saved its step; the trial is failed (by Optuna, as the
            # exception leaves) and queued again now, to continue from that checkpoint
            write_trial(trial, stopped_step=exc.step)
            write_trial(trial, reason=str(exc))
            # queued again either way: to continue from its checkpoint, or (stopped before its
            # first one, e.g. while starting up) to start afresh
            self._queue_again(trial, str(exc.run_dir) if exc.step is not None and exc.run_dir is not None else None)
            raise Stopped(exc.signum, exc.run_dir, exc.step, saved=exc.saved, trial=trial.number) from None
        except Diverged as exc:
            record = {"seed": seed, "run_dir": str(folder.get("run_dir", "")), "diverged_step": exc.step,
                      "diverged_value": exc.name, "reason": str(exc)}
            if self.spec.seeds == 1 or self.fixed:  # one seed: the trial is the run, and it diverged
                write_trial(trial, diverged_step=exc.step)
                write_trial(trial, diverged_value=exc.name)
                write_trial(trial, reason=str(exc))
                write_trial(trial, seconds=time.time() - t0)
                write_trial(trial, seed_runs=[record])
                raise
            return record
        except optuna.TrialPruned:
            write_trial(trial, seconds=time.time() - t0)
            raise
        metrics = dict(result.metrics)
        if "fid" in self.spec.objectives:
            metrics["fid"] = self.fid(result.run_dir, trial=trial, device=cfg.device)
        return {"seed": seed, "run_dir": str(result.run_dir),
                "metrics": {k: v for k, v in metrics.items() if math.isfinite(v)}, CURVE_ATTR: pruning.seed_curve(k)}

    def _conclude(self, trial, cfg: TrainConfig, records: list[dict[str, Any]], pruning: "Pruning",
                  t0: float) -> list[float]:
        """The trial's objectives: each seed's run scored on its own, then the mean over the seeds,
        the instability with the seeds' spread of final quality added (:func:`ganlab.study.objective.seed_mean`)."""
        finished = [r for r in records if "metrics" in r]
        if not finished:  # every seed diverged: the trial failed, as a one-seed trial does
            last = records[-1]
            for key in ("diverged_step", "diverged_value", "reason"):
                write_trial(trial, **{key: last[key]})
            write_trial(trial, diverged_seeds=len(records))
            write_trial(trial, seconds=time.time() - t0)
            raise Diverged(last["diverged_step"], last["diverged_value"], float("nan"))
        reports = {}
        for r in finished:
            report = instability_from_run(r["run_dir"])
            reports[r["seed"]] = report
            r["objectives"] = named_objective_values(self.spec, r["metrics"], report.score, report.loss_shape)
            r["instability"] = report.score if math.isfinite(report.score) else "inf"
            if report.adv_grad_share is not None:
                r["adv_grad_share"] = report.adv_grad_share
            if report.degenerate:
                r["degenerate"] = report.degenerate
        # the seeds' spread of final quality: added to the trial's instability, never to a run's own
        spread = configuration_instability(list(reports.values()))[1] if len(records) > 1 else None
        per_seed, means = seed_mean(self.spec, records, spread)
        values = combined_objective_values(self.spec, means)
        main = finished[0]
        report = reports[main["seed"]]
        write_trial(trial, seed_runs=records)
        write_trial(trial, run_dir=main["run_dir"])  # also where a retry reused a seed its first attempt finished
        write_trial(trial, metrics=main["metrics"] if len(records) == 1 else mean_metrics(finished))
        write_trial(trial, instability=means["instability"] if "instability" in means else
                            (report.score if math.isfinite(report.score) else "inf"))
        write_trial(trial, instability_terms={**report.components, **({"seed_spread": spread} if spread is not None else {})})
        loss_shape = means.get("loss_shape", report.loss_shape)
        write_trial(trial, loss_shape=loss_shape if math.isfinite(loss_shape) else "inf",
                    stability_diagnostics=report.diagnostics)
        shares = [reports[r["seed"]].adv_grad_share for r in finished if reports[r["seed"]].adv_grad_share is not None]
        if shares:  # the share of G's gradient from the adversarial term, over the seeds: a number, no label
            write_trial(trial, adv_grad_share=float(sum(shares) / len(shares)))
        # the unknown terms and the degenerate-run label (ganlab.metrics.stability): a label, not a
        # penalty of the instability score (the loss_shape score adds 10 for it)
        write_trial(trial, instability_unknown=report.unknown)
        degenerate = [r["degenerate"] for r in finished if r.get("degenerate")]
        if degenerate and len(degenerate) * 2 >= len(finished):
            write_trial(trial, degenerate=degenerate[0] + (f" ({len(degenerate)} of {len(records)} seeds)"
                                                               if len(records) > 1 else ""))
        if len(records) > 1:
            write_trial(trial, seed_values=per_seed)
            write_trial(trial, diverged_seeds=len(records) - len(finished))
        write_trial(trial, curve=pruning.curve())
        write_trial(trial, seconds=time.time() - t0)
        self._attach(trial, Path(main["run_dir"]), cfg, main["metrics"], report.score, values)
        if self.spec.keep_checkpoints != "all":
            self._slim(trial, finished)
        return values

    def _slim(self, trial, finished: list[dict[str, Any]]) -> None:
        """A finished trial keeps its final and best generators (weights only), not the training
        state of its runs (``[study].keep_checkpoints = "all"`` keeps everything)."""
        freed = 0
        for r in finished:
            try:
                freed += slim_run(Path(r["run_dir"]))["freed_bytes"]
            except (GanlabError, OSError) as exc:  # what was not dropped only costs disk
                write_trial(trial, slim_error=str(exc)[:200])
        write_trial(trial, freed_bytes=freed)

    def _resumable(self, trial) -> Path | None:
        """The run folder a retried trial continues (one a signal stopped), if it has a checkpoint.
        The storage is data: a folder outside this study's runs folder is refused (the trial is
        pruned with the reason), never opened."""
        folder = system_attrs(trial).get(RESUME_ATTR)
        if not folder:
            return None
        real = inside(folder, self.out / self.spec.name) if isinstance(folder, str) else None
        if real is None:
            why = (f"its storage entry {RESUME_ATTR} = {str(folder)[:200]!r} is not a run folder inside "
                   f"{self.out / self.spec.name}; nothing there was touched")
            write_trial(trial, refused=why)
            raise optuna.TrialPruned(f"refused: {why}")
        return real if (real / "config.json").is_file() and any((real / "checkpoints").glob("step-*.pt")) else None

    def _started(self, trial, run_dir: Path, seed: int) -> None:
        write_trial(trial, run_dir=str(run_dir))
        tag = {"study": self.spec.name, "trial": trial.number, "seed": seed, "storage": redact(self.storage_url)}
        if self.fixed:
            tag["arm"] = trial_record(trial).arm["label"]
        atomic_write_json(run_dir / "trial.json", tag)

    def fid(self, run_dir: Path, trial=None, device: str = "auto") -> float:
        """The run's FID with the study's feature network; the trial records which network and N."""
        entry = fid_entry_for_run(run_dir, inception_weights=self.inception_weights, fid_features=self.fid_features,
                                  device=device)
        if trial is not None:
            write_trial(trial, fid_implementation=entry["implementation"])
            write_trial(trial, fid_n=entry["n"])
        return float(entry["value"])

    def _attach(self, trial, run_dir: Path, cfg, metrics, instability: float, values) -> None:
        """HParams for TensorBoard, and the sample grid as an Optuna artifact."""
        hp = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in trial.params.items()}
        hp["tricks"] = ",".join(trial_record(trial).tricks or []) or "none"
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
            write_trial(trial, samples=str(samples[-1]))
            try:
                store_dir = self.out / self.spec.name / "artifacts"
                store_dir.mkdir(parents=True, exist_ok=True)
                upload_artifact(artifact_store=FileSystemArtifactStore(str(store_dir)), file_path=str(samples[-1]), study_or_trial=trial)
            except Exception as exc:  # an artifact is a convenience; the run folder holds the grid anyway
                write_trial(trial, artifact_error=str(exc)[:200])


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
    stored = study_record(study).fid_network_sha256
    if stored is None:
        write_study(study, fid_network_sha256=network.sha256)
        write_study(study, fid_implementation=network.implementation)
    elif stored != network.sha256:
        before = study_record(study).fid_implementation or f"a network with sha256 {stored[:16]}"
        raise UsageError(f"study {spec.name} in {redact(storage_url)} scores fid with {before}; this worker would use "
                         f"{network.implementation}, and FIDs of different feature networks do not compare; give the "
                         f"same network to continue, or --name NEW to start another study")


def run_study(spec: StudySpec, *, storage_url: str, out: Path, overrides: dict[str, Any], seed: int | None,
              n_trials: int | None, timeout: float | None, n_jobs: int, inception_weights: str | None,
              console: Console, storage_flag: str, fid_features: str | None = None,
              fid_network: FidNetwork | None = None, total_trials: int | None = None,
              worker_argv: Callable[[int, int | None], Sequence[str]] | None = None, threads: int | None = None) -> int:
    """Open (or continue) ``spec`` in its storage, run this worker's trials with the live table,
    and print the summary, the best trials and the follow-up commands.

    ``n_jobs > 1`` runs the trials in that many processes (:mod:`ganlab.study.workers`):
    ``worker_argv(k, trials)`` is the ``ganlab`` command line of extra worker ``k``. ``n_jobs`` may
    be ``"auto"``; each worker trains with ``threads`` CPU threads (None: its share of the cores)."""
    if n_jobs != 1 and worker_argv is None:
        raise UsageError("n_jobs > 1 runs trials in worker processes; give worker_argv (the ganlab study command line)")
    # Refuse a bad [train] table before any trial: resolve the base configuration once.
    total_trials = total_trials if total_trials is not None else spec.trials
    runner = StudyRunner(spec, storage_url, out, overrides, seed, console, inception_weights, fid_features,
                         total_trials=total_trials)
    if fid_network is None and "fid" in spec.objectives:
        fid_network = check_inception(spec, inception_weights, fid_features)
    base_cfg = TrainConfig.from_dict({**runner.base_config(), "out": str(out / spec.name)}, f"study {spec.name}").validate()
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
    stored = study_record(study).definition_digest
    if stored is None:
        write_study(study, definition_digest=spec.digest)
        write_study(study, definition=spec.source)
        write_study(study, objectives=list(spec.objectives) if not spec.weights else ["weighted"])
        write_study(study, objective_names=list(spec.objectives))
        write_study(study, overrides={k: v for k, v in overrides.items() if k in ("data", "val_data")})
    elif stored != spec.digest:
        raise UsageError(f"study {spec.name} in {redact(storage_url)} was created from a different definition; "
                         f"use --name NEW to start another study, or the original file to continue")
    agree_on_fid_network(study, spec, fid_network, storage_url)
    agree_on_stability(study, spec, redact(storage_url))
    spec = agree_on_pruning(study, spec, console)
    if not spec.searches:  # fixed [arms]: nothing to search, the confirmation trains them
        console.print(f"study {spec.name} compares {len(spec.arms)} fixed arms ({', '.join(a[0] for a in spec.arms)}) "
                      f"with the baseline{' and the L1-only control' if spec.control else ''}: nothing to search. "
                      f"Train them over seeds: ganlab confirm {spec.name}{storage_flag}", highlight=False)
        return 0
    revived = recover_dead_trials(study, spec, out / spec.name)
    if revived:
        console.print(f"trial(s) {', '.join(map(str, revived))}: their worker died; marked failed and queued again",
                      highlight=False)
    n_before = len(shown(study.trials))
    if budget_spent(study, total_trials):
        console.print(f"study {spec.name}: its budget of {total_trials} trials is spent ({counted(study)} trials); "
                      f"nothing to do (raise [study].trials or --total-trials to add trials)", highlight=False)
        return _summary(study, runner, spec, console, out, storage_flag, time.time())
    # The workers and their share of the cores (threads), set in this process before any trial
    runs = n_trials if n_trials is not None else (max(1, total_trials - counted(study)) if total_trials else None)
    plan = plan_workers(n_jobs, threads, base_cfg, runs)
    n_jobs = plan.n_jobs
    if plan.devices[0] is not None:  # one GPU per worker: this process takes the first
        runner.overrides = {**runner.overrides, "device": plan.devices[0]}
    trial_shares = shares(n_trials, n_jobs)
    # Every trial trains alone in its process (the torch generator behind dropout, and the
    # generators a checkpoint restores, are global to a process): N jobs are N processes.
    workers = Workers(worker_argv, trial_shares, out / spec.name, plan) if n_jobs > 1 else None
    n_trials = trial_shares[0]
    console.print(f"[bold]ganlab study[/] {spec.name}: {', '.join(spec.objectives)}"
                  f"{' (weighted)' if spec.weights else ''}, sampler {spec.sampler if not spec.scalarised or spec.sampler != 'nsga2' else 'tpe'}, "
                  f"pruner {spec.pruner}"
                  f"{' ' + describe_pruning(spec) if spec.pruner != 'none' and spec.scalarised else ''}, "
                  f"{spec.steps} steps per trial; storage {redact(storage_url)} "
                  f"({n_before} trials so far{f', {total_trials} in all' if total_trials else ''}); "
                  f"{f'{spec.seeds} seeds per trial; ' if spec.seeds > 1 else ''}runs in {out / spec.name}"
                  f"; {plan.describe()}", highlight=False)
    disk = disk_line(runner, spec, n_trials, total_trials, n_jobs)
    if disk:
        console.print(disk, highlight=False)
    artifacts = (out / spec.name / "artifacts").resolve()  # where _attach uploads the sample grids
    console.print(f"watch it live: {dashboard_command(storage_url, artifacts)}{dashboard_hint()}", highlight=False,
                  markup=False)
    t0 = time.time()
    try:
        _optimize(study, runner, spec, console, n_trials, timeout, total_trials)
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
        recover_dead_trials(study, spec, out / spec.name)
        # the trials every worker of this command ran, by the stamp each left on its trials
        runner.ran.extend(t.number for t in study.get_trials(deepcopy=False)
                          if isinstance(trial_record(t).worker, dict) and trial_record(t).worker.get("pid") in pids)
    return _summary(study, runner, spec, console, out, storage_flag, t0)


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"


def disk_line(runner: StudyRunner, spec: StudySpec, n_trials: int | None, total_trials: int | None,
              n_jobs: int) -> str | None:
    """What the study's checkpoints will take: a finished run keeps its final and best
    generators (weights only) unless ``keep_checkpoints = "all"``; a running one its full
    checkpoint (weights and optimiser states) too."""
    try:
        cfg = TrainConfig.from_dict({**runner.base_config(), "out": str(runner.out / spec.name)}, f"study {spec.name}")
        full, weights = checkpoint_bytes(cfg)
    except (GanlabError, ValueError, RuntimeError):
        return None
    kept = (full + weights) if spec.keep_checkpoints == "all" else 2 * weights
    per_trial = spec.seeds * kept
    trials = total_trials or n_trials
    what = (f"about {_human(per_trial)} per trial ({spec.seeds} seed(s) x {_human(kept)}"
            f"{', all checkpoints kept' if spec.keep_checkpoints == 'all' else ': final and best generator, weights only'})")
    if trials:
        what += f", {_human(trials * per_trial)} for {trials} trials"
    return f"disk: {what}, plus {_human(n_jobs * (full + weights))} while {'a trial runs' if n_jobs == 1 else f'{n_jobs} trials run'}"


def _told_elsewhere(study, runner: StudyRunner) -> int | None:
    """The trial whose result this worker returned but which another worker had already
    finished (a stale heartbeat, or a dead-worker check, failed it while this worker was paused),
    or None. Optuna then refuses the result (``Cannot tell a FAIL trial.``, or an assertion of
    its own while it reports that refusal)."""
    number = runner.ran[-1] if runner.ran else None
    if number is None or getattr(runner, "returned", None) != number:
        return None
    found = [t for t in study.get_trials(deepcopy=False) if t.number == number]
    return number if found and found[0].state == TrialState.FAIL else None


def optimize_on(study, runner: StudyRunner, console: Console, n_trials: int | None, **kwargs) -> None:
    """``study.optimize`` that goes on when a trial's result cannot be told because another
    worker failed that trial meanwhile (a worker stopped with SIGSTOP past its heartbeat, then
    continued): one line, the trial stays failed and queued again by whoever failed it, and this
    worker runs its remaining trials. Optuna raised ``Cannot tell a FAIL trial.`` and the worker
    ran nothing more."""
    start = len(runner.ran)
    while True:
        left = None if n_trials is None else n_trials - (len(runner.ran) - start)
        if left is not None and left <= 0:
            return
        try:
            study.optimize(runner, n_trials=left, **kwargs)
            return
        except Exception:  # noqa: BLE001 - only the told-elsewhere case is handled
            number = _told_elsewhere(study, runner)
            if number is None:
                raise
            runner.returned = None
            console.print(f"[yellow]warning:[/] trial {number}: another worker marked it failed while this one was "
                          "paused or unreachable (its heartbeat stopped); its result is dropped and the trial runs "
                          "again from the queue; this worker goes on", highlight=False)


def _optimize(study, runner: StudyRunner, spec: StudySpec, console: Console, n_trials: int | None,
              timeout: float | None, total_trials: int | None = None) -> None:
    """This process's trials, one at a time, with the live table (or a line per trial in a log)."""
    n_jobs = 1

    def budget(study, trial) -> None:  # the study-wide budget: stop asking once it is spent
        if budget_spent(study, total_trials):
            study.stop()

    if console.is_terminal:
        with Live(trials_table(study, spec), console=console, refresh_per_second=2, transient=False) as live:
            def refresh(study, trial) -> None:
                recover_dead_trials(study, spec, runner.out / spec.name)  # a worker that died meanwhile: its trial is queued again
                live.update(trials_table(study, spec))

            optimize_on(study, runner, console, n_trials, timeout=timeout, n_jobs=n_jobs, callbacks=[refresh, budget],
                        catch=(GanlabError,), gc_after_trial=True)
    else:
        # A log, not a terminal: no live redrawing; one line per finished trial, then the table
        # once, wide enough that its cells do not wrap over many lines.
        def log_trial(study, trial) -> None:
            recover_dead_trials(study, spec, runner.out / spec.name)
            if trial_record(trial).discarded:
                return
            names = list(spec.objectives) if not spec.weights else [WEIGHTED]
            values, state = trial_cells(trial, len(names))
            console.print(f"trial {trial.number}: {state}; " + ", ".join(f"{n} {v}" for n, v in zip(names, values)),
                          highlight=False, markup=False)

        optimize_on(study, runner, console, n_trials, timeout=timeout, n_jobs=n_jobs, callbacks=[log_trial, budget],
                    catch=(GanlabError,), gc_after_trial=True)
        wide = Console(file=console.file, width=max(console.width, 160), soft_wrap=True, color_system=None)
        wide.print(trials_table(study, spec))


def _summary(study, runner: StudyRunner, spec: StudySpec, console: Console, out: Path, storage_flag: str,
             t0: float) -> int:
    by_number = {t.number: t for t in study.trials}
    # The trials this worker ran, counted by number: a retried trial (queued before n_before) too.
    done = shown([by_number[n] for n in sorted(set(runner.ran)) if n in by_number])
    counts: dict[str, int] = {}
    for t in done:
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    console.print(f"{len(done)} trial(s) in {time.time() - t0:.0f} s ({', '.join(f'{v} {k}' for k, v in counts.items())}); "
                  f"the study holds {len(shown(study.trials))}", highlight=False)
    best = best_trials(study)
    if best:
        label = "Pareto front" if len(spec.directions) > 1 else "best trial"
        console.print(f"{label}: " + "; ".join(
            f"#{t.number} [{', '.join(trial_record(t).tricks or []) or 'no tricks'}] "
            + " ".join(f"{n}={fmt(v)}" for n, v in zip((study_record(study).objectives or []), t.values))
            for t in best), highlight=False, markup=False)
    console.print(f"report: ganlab report {spec.name}{storage_flag}", highlight=False)
    console.print(f"compare the trials: tensorboard --logdir {out / spec.name}", highlight=False)
    console.print(f"dashboard: {dashboard_command(runner.storage_url, (out / spec.name / 'artifacts').resolve())}"
                  f"{dashboard_hint()}", highlight=False, markup=False)
    return 0
