"""The training loop: steps, and the hooks that give it its cadence.

``train(cfg)`` prepares the run (checks, data, run folder, session, resume), opens its logs and
runs :meth:`Session.iterate` for the configured number of steps, calling the hooks of
:mod:`ganlab.train.hooks` after each (logging, evaluation and the best checkpoint, checkpoints,
the stop signal; their order is stated there). Building lives in :mod:`ganlab.train.build`, the
folder in :mod:`ganlab.train.rundir`, the checkpoints in :mod:`ganlab.train.checkpoint`, what is
printed in :mod:`ganlab.train.console`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from rich.console import Console
from rich.markup import escape

from ganlab.config import TrainConfig, default_run_name
from ganlab.data import build_datasets
from ganlab.errors import Diverged, GanlabError, UsageError
from ganlab.io import atomic_write_json
from ganlab.metrics.inloop import inloop_feature_extractor
from ganlab.metrics.stability import degenerate_from_run
from ganlab.nets.resnet_unet import resnet18_weights_file
from ganlab.runtime import runtime_for
from ganlab.threads import apply_budget, budget_for_run, kept
from ganlab.stats import JsonlSink, truncate_stats
from ganlab.train import distributed
from ganlab.train.build import build_session, build_stack, total_steps
from ganlab.train.checkpoint import (BestSoFar, checkpoint_files, is_slimmed, latest_checkpoint, remove_stale_temporaries,
                                     restore, slimmed_refusal)
from ganlab.train.console import banner, progress_bar, summary
from ganlab.train.distributed import Null
from ganlab.train.guard import RunLock, StopSignals
from ganlab.train.hooks import Callbacks, Hook, LoopState, default_hooks
from ganlab.train.logs import RunLogs, quietly
from ganlab.train.memory import check_fits
from ganlab.train.result import RunResult
from ganlab.train.rundir import check_writable, environment, new_run_dir, write_status

__all__ = ["Hook", "RunResult", "train"]


def _write_failed(exc: OSError, run_dir: Path, step: int) -> GanlabError:
    """One line for a write that failed mid-run: what, why, and where the run can go on from."""
    what = exc.filename or run_dir
    good = checkpoint_files(run_dir) if run_dir.is_dir() else []
    then = (f"its newest checkpoint {good[0].name} is intact; fix that and continue with: ganlab train --resume {run_dir}"
            if good else "no checkpoint was written yet; fix that and start it again")
    return GanlabError(f"cannot write {what} ({exc.strerror or exc}); the run stopped after step {step}; {then}")


def _degenerate(run_dir: Path) -> str | None:
    """The degenerate-run label of a finished run (``no adversarial signal``), read from its
    stats.jsonl; None where the adversarial game happened or the file cannot be read."""
    try:
        return degenerate_from_run(run_dir)
    except (OSError, GanlabError):
        return None


def train(
    cfg: TrainConfig,
    *,
    resume: str | os.PathLike | None = None,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
    on_start: Callable[[Path], None] | None = None,
    hooks: Sequence[Hook] = (),
    datasets=None,
    console=None,
    progress: bool = True,
) -> RunResult:
    """Train (or resume) a run. ``on_eval(step, metrics)`` is called after every evaluation and
    may raise to stop the run (a study's pruner does); ``on_start(run_dir)`` once the run folder
    exists. ``hooks`` are :class:`~ganlab.train.hooks.Hook` objects of one's own, called after
    those (the order is stated in :mod:`ganlab.train.hooks`). ``datasets`` passes ready (train,
    val) splits (a study shares them between trials).

    SIGINT and SIGTERM (in the main thread) finish the step in progress, write a checkpoint and
    raise :class:`~ganlab.errors.Stopped`; a second signal raises it at once. The process
    that trains a run holds its folder's lock (:class:`~ganlab.train.guard.RunLock`)."""
    user = [Callbacks(on_start, on_eval)] if on_start is not None or on_eval is not None else []
    stop = StopSignals()
    held: list[RunLock] = []
    try:
        with stop, kept():  # the run's thread budget, then the caller's threads again
            return _train(cfg, stop, held, resume=resume, hooks=default_hooks([*user, *hooks]), datasets=datasets,
                          console=console, progress=progress)
    except KeyboardInterrupt as exc:  # a signal this thread could not catch: say where the run is
        exc.run_dir = stop.run_dir  # type: ignore[attr-defined]
        raise
    finally:
        for lock in held:
            lock.release()


def _train(cfg: TrainConfig, stop: StopSignals, held: list, *, resume, hooks: list[Hook], datasets, console,
           progress) -> RunResult:
    loop = _prepare(cfg, stop, held, resume=resume, datasets=datasets, console=console, progress=progress)
    loop.hooks = hooks
    for hook in hooks:
        hook.before_train(loop)
    _open_logs(loop)
    t_start = time.perf_counter()
    try:
        stop.training = True  # from here a first signal finishes the step and saves
        with loop.log.bus.activate(), loop.bar:
            loop.bar_task = loop.bar.add_task("train", total=loop.total, completed=loop.start, info="")
            for step in range(loop.start, loop.total):
                loop.step = loop.log.bus.step = step
                loop.session.iterate(step, loop.next_batch)
                for hook in hooks:
                    hook.after_step(loop)
    except BaseException as exc:
        loop.settle()  # the last step's writes in the background: recorded where they reached the disk
        loop.status = "diverged" if isinstance(exc, Diverged) else "stopped"
        loop.diverged = exc if isinstance(exc, Diverged) else None
        if isinstance(exc, OSError):  # a full disk, a folder gone read-only: one line, the checkpoints intact
            raise _write_failed(exc, loop.run_dir, loop.result.step) from None
        raise
    finally:
        loop.log.close()
        stop.training = False
        if loop.is_main:  # the one place a run's final status is written
            _write_final_status(loop)
        loop.dist.close(finished=loop.status == "finished")
        for hook in hooks:
            hook.after_train(loop)
    result = loop.result
    result.seconds = time.perf_counter() - t_start
    result.images_per_second = loop.images_done / result.seconds if result.seconds > 0 else 0.0
    result.last = loop.log.last
    result.best = loop.best.status().get("best", {})
    summary(loop.console, result, cfg)
    return result


def _prepare(cfg: TrainConfig, stop: StopSignals, held: list, *, resume, datasets, console, progress) -> LoopState:
    """Checks that need no work, then the data, the run folder and the session; a resume loads
    its checkpoint. Returns what the hooks see."""
    console = console or Console(stderr=True, soft_wrap=True)

    def warn(msg: str) -> None:
        # File names may hold "[...]": printed as they are, never read as console markup.
        console.print(f"[yellow]warning:[/] {escape(msg)}", highlight=False, soft_wrap=True)

    build_stack(cfg)  # an impossible trick stack is refused before any work
    if cfg.generator == "resnet18-unet" and cfg.backbone_weights not in ("none", "") and resume is None:
        resnet18_weights_file(cfg.backbone_weights)  # absent offline: one line, before any data or run folder
    dist = distributed.setup(cfg)  # one process unless started by torchrun
    if not dist.is_main:  # only rank 0 prints and writes
        console, progress = Console(quiet=True), False
    runtime = runtime_for(cfg.replace(device=dist.device_arg(cfg.device)))
    threads = apply_budget(budget_for_run(cfg.threads))  # before any work: a worker's share of the cores
    close = check_fits(cfg, runtime, batch=len(dist.rows(cfg.batch_size)))  # one line, not an out-of-memory kill
    if close:
        warn(close)

    train_data, val_data = datasets if datasets is not None else build_datasets(cfg, warn)
    total = total_steps(cfg, len(train_data))
    if resume is not None:
        run_dir = Path(resume)
        check_writable(run_dir, "--resume", "make the run folder writable")  # before any work
        if is_slimmed(run_dir):
            raise slimmed_refusal(run_dir)
        if dist.is_main:
            held.append(RunLock(run_dir))  # one writer: a second trainer of this folder is refused
    else:
        def create() -> Path:
            folder = new_run_dir(cfg.out, cfg.name or default_run_name(cfg))
            held.append(RunLock(folder, "--out"))
            return folder

        run_dir = dist.broadcast(create)
    stop.run_dir = run_dir
    session = build_session(cfg, runtime, total, dist)
    train_data.seed(cfg.seed)
    start = 0
    best = BestSoFar(cfg.best_metric)
    if resume is not None:
        path, payload = latest_checkpoint(run_dir, warn, map_location=runtime.device, for_resume=True)
        start = restore(session, train_data, path, payload)
        stop.checkpoint = start
        if start >= total:
            raise UsageError(f"--resume {resume}: the run is finished at step {start} of {total}; "
                             f"give --steps N (more than {start - cfg.pretrain_steps}) to train it further")
        if dist.is_main:
            best = BestSoFar.resume(run_dir, cfg.best_metric, start, warn)
            remove_stale_temporaries(run_dir)  # left by a process killed while writing; this one holds the lock
        console.print(f"resuming {run_dir} from step {start} ({path.name})", highlight=False, markup=False)
    elif dist.is_main:
        atomic_write_json(run_dir / "config.json", cfg.to_dict())
        atomic_write_json(run_dir / "env.json", environment(runtime, threads))
    dist.seed_workers(cfg.seed, start)
    if dist.is_main:
        atomic_write_json(run_dir / "tricks.json", session.stack.describe())
    return LoopState(cfg=cfg, session=session, dist=dist, runtime=runtime, run_dir=run_dir, train_data=train_data,
                     val_data=val_data, total=total, start=start, resumed=resume is not None, console=console, warn=warn,
                     stop=stop, best=best, progress=progress, step=start - 1,
                     saved=start if resume is not None else None)


def _open_logs(loop: LoopState) -> None:
    """status.json "running", TensorBoard and stats.jsonl (a resume drops the steps after its
    checkpoint: they are computed again), the banner, the batches and the progress bar."""
    cfg, run_dir, start = loop.cfg, loop.run_dir, loop.start
    if loop.is_main:
        write_status(run_dir, "running", start, loop.total, trained_step=start, **loop.best.status())
        from torch.utils.tensorboard import SummaryWriter  # heavy: imported when a run starts

        writer = SummaryWriter(str(run_dir), purge_step=start if loop.resumed else None)
        if loop.resumed:  # the steps after the checkpoint are computed again
            truncate_stats(run_dir / "stats.jsonl", before=start)
        loop.log = RunLogs(run_dir, cfg.batch_size, writer, JsonlSink(run_dir / "stats.jsonl"))
    else:
        loop.log = RunLogs(run_dir, cfg.batch_size, Null(), Null())
    banner(loop.console, cfg, loop.session, loop.train_data, loop.val_data, run_dir, loop.runtime, loop.total, start)
    if start == 0:
        loop.log.writer.add_text("config", "```json\n" + json.dumps(cfg.to_dict(), indent=2) + "\n```", 0)
    loop.extractor = inloop_feature_extractor(device=loop.runtime.device)  # None where the weights are absent
    loop.next_batch = loop.dist.batches(loop.train_data, cfg.batch_size, loop.runtime, loop.warn)  # this process's rows
    if loop.runtime.channels_last:
        raw = loop.next_batch
        loop.next_batch = lambda: tuple(t.contiguous(memory_format=torch.channels_last) for t in raw())  # noqa: E731
    loop.result = RunResult(run_dir, start)
    loop.bar = progress_bar(loop.console, loop.progress)


def _write_final_status(loop: LoopState) -> None:
    """"step" is always the newest intact checkpoint (where a resume continues; 0: none yet),
    "trained_step" the last step trained."""
    newest = loop.stop.checkpoint if loop.stop.checkpoint is not None else 0
    marks = {"trained_step": loop.result.step, **loop.best.status()}
    if loop.diverged is not None:
        marks.update(diverged_step=loop.diverged.step, value=loop.diverged.name)
    elif loop.status == "finished" and (label := _degenerate(loop.run_dir)) is not None:
        marks["degenerate"] = label
    failed = quietly(write_status, loop.run_dir, loop.status, newest, loop.total, **marks)
    if failed is not None and loop.status == "finished":
        loop.warn(f"could not write {loop.run_dir / 'status.json'} ({failed.strerror or failed})")
