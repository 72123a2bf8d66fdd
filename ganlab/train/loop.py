"""The training loop: only the cadence of logging, evaluation and saving.

``train(cfg)`` prepares the run (checks, data, run folder, session, resume), then runs
:meth:`Session.iterate` for the configured number of iterations, flushing the statistics every
``--log-every`` steps, evaluating every ``--eval-every`` and saving every ``--save-every``.
Building lives in :mod:`ganlab.train.build`, the folder in :mod:`ganlab.train.rundir`, the
checkpoints in :mod:`ganlab.train.checkpoint`, what is printed in :mod:`ganlab.train.console`.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as tdist
from rich.console import Console
from rich.markup import escape

from ganlab.config import TrainConfig, default_run_name
from ganlab.data import build_datasets
from ganlab.errors import GanlabError, UsageError
from ganlab.io import atomic_write_json
from ganlab.metrics.inloop import inloop_feature_extractor
from ganlab.metrics.stability import StabilityWindow, degenerate_from_run
from ganlab.nets.resnet_unet import resnet18_weights_file
from ganlab.runtime import runtime_for
from ganlab.threads import apply_budget, budget_for_run, kept
from ganlab.stats import JsonlSink, StatsBus, TensorBoardSink, truncate_stats
from ganlab.train import distributed
from ganlab.train.build import build_session, build_stack, total_steps
from ganlab.train.checkpoint import (BestSoFar, checkpoint_files, in_background, is_slimmed, latest_checkpoint, restore,
                                     save_best, save_checkpoint, save_checkpoint_in_background, slimmed_refusal)
from ganlab.train.console import banner, loss_info, progress_bar, summary
from ganlab.train.distributed import Null
from ganlab.errors import Diverged, Stopped
from ganlab.train.guard import RunLock, StopSignals
from ganlab.train.inloop import evaluate
from ganlab.train.memory import check_fits
from ganlab.train.rundir import check_writable, environment, new_run_dir, write_status

__all__ = ["RunResult", "train"]


@dataclass
class RunResult:
    run_dir: Path
    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    images_per_second: float = 0.0
    status: str = "finished"
    best: dict = field(default_factory=dict)  # {"checkpoint", "metric", "value", "step"} of best.pt; {} when none


def _quietly(fn, *args, **kwargs) -> OSError | None:
    """Run a clean-up write; an OSError (the disk that stopped the run) is returned, not raised."""
    try:
        fn(*args, **kwargs)
    except OSError as exc:
        return exc
    return None


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


def _first_nonfinite(rows) -> tuple[int, str, float] | None:
    for step, row in rows:
        for name, value in row.items():
            if not math.isfinite(value):
                return step, name, value
    return None


class _Logger:
    """The stats bus, its sinks (TensorBoard, stats.jsonl), the throughput window and the
    stability terms over a moving window (``stability/...`` scalars, where users look)."""

    def __init__(self, run_dir: Path, batch_size: int, writer, jsonl):
        self.writer, self.jsonl, self.batch_size = writer, jsonl, batch_size
        self.bus = StatsBus([TensorBoardSink(writer), jsonl])
        self.last: dict[str, float] = {}
        self.t_window, self.n_window = time.perf_counter(), 0
        self.stability = StabilityWindow()

    def flush(self) -> None:
        """Write what was reported since the last flush; a NaN or Inf stops the run."""
        elapsed = time.perf_counter() - self.t_window
        rows = self.bus.flush()
        if rows:
            for name, value in self.stability.update(rows).items():
                self.writer.add_scalar(f"stability/{name}", value, rows[-1][0])
        if self.n_window and elapsed > 0 and rows:
            ips = self.n_window * self.batch_size / elapsed
            rows[-1][1]["perf/img_per_s"] = ips
            self.writer.add_scalar("perf/img_per_s", ips, rows[-1][0])
            self.jsonl(rows[-1][0], {"perf/img_per_s": ips})
        self.jsonl.flush()
        self.t_window, self.n_window = time.perf_counter(), 0
        bad = _first_nonfinite(rows)
        if bad is not None:
            raise Diverged(*bad)
        for _, row in rows:
            self.last.update(row)

    def close(self) -> None:
        # Closing the logs on a full disk fails too; that must not hide why the run stopped.
        _quietly(self.writer.flush)
        _quietly(self.writer.close)
        _quietly(self.jsonl.close)


def train(
    cfg: TrainConfig,
    *,
    resume: str | os.PathLike | None = None,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
    on_start: Callable[[Path], None] | None = None,
    datasets=None,
    console=None,
    progress: bool = True,
) -> RunResult:
    """Train (or resume) a run. ``on_eval(step, metrics)`` is called after every evaluation and
    may raise to stop the run (a study's pruner does); ``on_start(run_dir)`` once the run folder
    exists. ``datasets`` passes ready (train, val) splits (a study shares them between trials).

    SIGINT and SIGTERM (in the main thread) finish the step in progress, write a checkpoint and
    raise :class:`~ganlab.errors.Stopped`; a second signal raises it at once. The process
    that trains a run holds its folder's lock (:class:`~ganlab.train.guard.RunLock`)."""
    stop = StopSignals()
    held: list[RunLock] = []
    try:
        with stop, kept():  # the run's thread budget, then the caller's threads again
            return _train(cfg, stop, held, resume=resume, on_eval=on_eval, on_start=on_start, datasets=datasets,
                          console=console, progress=progress)
    except KeyboardInterrupt as exc:  # a signal this thread could not catch: say where the run is
        exc.run_dir = stop.run_dir  # type: ignore[attr-defined]
        raise
    finally:
        for lock in held:
            lock.release()


def _stop_agreed(stop: StopSignals, dist) -> int | None:
    """The signal every process stops on after this step, or None: under torchrun the processes
    agree (the largest signal number any of them got), so that every rank stops at the same step.
    The agreement is a collective that waits for the device: the loop asks for it only where it
    reads its statistics back anyway (a logging step), never once per step."""
    if not dist.enabled:
        return stop.signum
    flag = torch.tensor([stop.signum or 0], device=dist.device if dist.device is not None and dist.device.type == "cuda" else "cpu")
    tdist.all_reduce(flag, op=tdist.ReduceOp.MAX)
    return int(flag.item()) or None


def _written(pending) -> bool:
    """Whether a checkpoint written in the background reached the disk (waiting for it)."""
    try:
        pending.result()
        return True
    except Exception:
        return False


def _train(cfg: TrainConfig, stop: StopSignals, held: list, *, resume, on_eval, on_start, datasets, console,
           progress) -> RunResult:
    console = console or Console(stderr=True, soft_wrap=True)

    def warn(msg: str) -> None:
        # File names may hold "[...]": printed as they are, never read as console markup.
        console.print(f"[yellow]warning:[/] {escape(msg)}", highlight=False, soft_wrap=True)

    # Checks that need no work: the trick stack, pretrained weights, memory ------------------
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

    # Data, run folder, session; a resume loads its checkpoint ---------------------------------
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
        console.print(f"resuming {run_dir} from step {start} ({path.name})", highlight=False, markup=False)
    elif dist.is_main:
        atomic_write_json(run_dir / "config.json", cfg.to_dict())
        atomic_write_json(run_dir / "env.json", environment(runtime, threads))
    dist.seed_workers(cfg.seed, start)
    if dist.is_main:
        atomic_write_json(run_dir / "tricks.json", session.stack.describe())
    if on_start is not None:
        on_start(run_dir)

    # Logs ---------------------------------------------------------------------------------------
    if dist.is_main:
        write_status(run_dir, "running", start, total, trained_step=start, **best.status())
        from torch.utils.tensorboard import SummaryWriter  # heavy: imported when a run starts

        writer = SummaryWriter(str(run_dir), purge_step=start if resume is not None else None)
        if resume is not None:  # the steps after the checkpoint are computed again
            truncate_stats(run_dir / "stats.jsonl", before=start)
        log = _Logger(run_dir, cfg.batch_size, writer, JsonlSink(run_dir / "stats.jsonl"))
    else:
        log = _Logger(run_dir, cfg.batch_size, Null(), Null())
    banner(console, cfg, session, train_data, val_data, run_dir, runtime, total, start)
    if start == 0:
        log.writer.add_text("config", "```json\n" + json.dumps(cfg.to_dict(), indent=2) + "\n```", 0)
    extractor = inloop_feature_extractor(device=runtime.device)  # None where the weights are absent
    next_batch = dist.batches(train_data, cfg.batch_size, runtime, warn)  # this process's rows
    if runtime.channels_last:
        raw = next_batch
        next_batch = lambda: tuple(t.contiguous(memory_format=torch.channels_last) for t in raw())  # noqa: E731

    # The loop -----------------------------------------------------------------------------------
    result = RunResult(run_dir, start)
    t_start = time.perf_counter()
    images_done = 0
    status = "finished"
    diverged: Diverged | None = None
    saved = start if resume is not None else None  # the newest checkpoint on disk
    prog = progress_bar(console, progress)
    try:
        stop.training = True  # from here a first signal finishes the step and saves
        with log.bus.activate(), prog:
            task = prog.add_task("train", total=total, completed=start, info="")
            for step in range(start, total):
                log.bus.step = step
                session.iterate(step, next_batch)
                log.n_window += 1
                images_done += cfg.batch_size
                done = step + 1
                if done % cfg.log_every == 0 or done == total:
                    log.flush()
                    prog.update(task, completed=done, info=loss_info(log.last))
                pending = best_pending = None
                if done == total and not dist.enabled:
                    # The last checkpoint goes to disk while the final evaluation runs: nothing
                    # changes the weights any more.
                    log.flush()  # a NaN logged since the last flush stops the run before it is saved
                    pending = save_checkpoint_in_background(run_dir, session, train_data, done)
                try:
                    if dist.is_main and ((cfg.eval_every and done % cfg.eval_every == 0) or done == total):
                        log.bus.step = step
                        metrics = evaluate(session, val_data, step, run_dir, log.writer, extractor, train_data)
                        for k, v in metrics.items():
                            log.bus.add(k, v)
                        log.flush()
                        result.metrics = metrics
                        value = best.improves(metrics)
                        if value is not None:  # best.pt, then status.json naming it (the newest checkpoint unchanged)
                            record = {"metric": best.metric, "value": value, "step": done}
                            if pending is not None:  # the last step: best.pt goes to disk beside the final checkpoint
                                best_pending = in_background(save_best, run_dir, session, done, record)
                            elif save_best(run_dir, session, done, record):
                                best.record(value, done)
                                write_status(run_dir, "running", saved or 0, total, trained_step=done, **best.status())
                        elif best.metric != "none" and best.value is None and best.metric not in metrics:
                            warn(f"--best-metric {best.metric}: this evaluation did not measure it, so no best "
                                 "checkpoint is kept (val/kid needs the Inception weights)")
                            best = BestSoFar("none")
                        if on_eval is not None:
                            on_eval(done, metrics)
                except BaseException:
                    if pending is not None and _written(pending):
                        saved = stop.checkpoint = done
                    if best_pending is not None and _written(best_pending) and best_pending.result():
                        best.record(value, done)
                    raise
                if (cfg.save_every and done % cfg.save_every == 0) or done == total:
                    if pending is not None:
                        pending.result()  # a failed write raises here
                        if best_pending is not None and best_pending.result():
                            best.record(value, done)
                    else:
                        log.flush()  # every rank: a NaN logged since the last flush stops the run before it is saved
                        if dist.is_main:
                            save_checkpoint(run_dir, session, train_data, done)
                    saved = stop.checkpoint = done
                    if dist.is_main and done < total:  # how far a run got, also after it is killed
                        write_status(run_dir, "running", done, total, trained_step=done, **best.status())
                result.step = done
                # alone: after every step (a Python int); under torchrun: at logging steps, where
                # the loop already waits for the device
                agree = done < total and (not dist.enabled or done % cfg.log_every == 0)
                signum = _stop_agreed(stop, dist) if agree else None
                if signum is not None:  # SIGINT/SIGTERM: the step is done; save it and stop
                    log.flush()
                    if saved != done:
                        if dist.is_main:
                            save_checkpoint(run_dir, session, train_data, done)
                        saved = stop.checkpoint = done
                    raise Stopped(signum, run_dir, done, saved=True)
    except Diverged as exc:
        status, diverged = "diverged", exc
        raise
    except OSError as exc:  # a full disk, a folder gone read-only: one line, the checkpoints intact
        status = "stopped"
        raise _write_failed(exc, run_dir, result.step) from None
    except BaseException:
        status = "stopped"
        raise
    finally:
        log.close()
        stop.training = False
        if dist.is_main:  # the one place a run's final status is written
            # "step" is always the newest intact checkpoint (where a resume continues; 0: none
            # yet), "trained_step" the last step trained
            newest = stop.checkpoint if stop.checkpoint is not None else 0
            marks = {"trained_step": result.step, **best.status()}
            if diverged is not None:
                marks.update(diverged_step=diverged.step, value=diverged.name)
            elif status == "finished" and (label := _degenerate(run_dir)) is not None:
                marks["degenerate"] = label
            failed = _quietly(write_status, run_dir, status if diverged is None else "diverged", newest, total, **marks)
            if failed is not None and status == "finished":
                warn(f"could not write {run_dir / 'status.json'} ({failed.strerror or failed})")
        dist.close(finished=status == "finished")
    result.seconds = time.perf_counter() - t_start
    result.images_per_second = images_done / result.seconds if result.seconds > 0 else 0.0
    result.last = log.last
    result.best = best.status().get("best", {})
    summary(console, result, cfg)
    return result
