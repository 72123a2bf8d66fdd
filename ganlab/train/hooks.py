"""The training loop's cadence as hooks: logging, evaluation and the best checkpoint,
checkpoints, the stop signal, and the user's own.

:func:`ganlab.train.train` runs :meth:`Session.iterate` once per step and calls the hooks at
fixed points, always in this order:

1. ``before_train(loop)`` of every hook, in list order, once: the run folder holds its
   ``config.json`` and ``tricks.json`` and the session is built (restored, on a resume); the logs
   are not open yet. A hook may raise here to refuse the run; nothing more is written then.
2. after every step, ``after_step(loop)`` of every hook in list order. The built-in hooks come
   in this order, the user's between checkpoints and the stop signal:

   ================  =====================================================================
   ``Logging``       every ``--log-every`` steps and at the last: flush the statistics to
                     TensorBoard and ``stats.jsonl`` (a NaN or Inf there raises
                     :class:`~ganlab.errors.Diverged`), show the newest losses
   ``FinalWrite``    the last step of a one-process run: the final checkpoint goes to disk in
                     a background thread while the final evaluation runs
   ``Evaluation``    every ``--eval-every`` steps and at the last (rank 0): the in-loop
                     evaluation; a new best ``--best-metric`` writes ``checkpoints/best.pt``,
                     then ``status.json`` naming it; then ``after_eval`` of every hook
   ``Checkpoints``   every ``--save-every`` steps and at the last: a checkpoint (or the wait
                     for the background one), then ``status.json``; the step counts as trained
   (user hooks)
   ``StopSignal``    SIGINT/SIGTERM: save this step if it is not saved yet and raise
                     :class:`~ganlab.errors.Stopped`
   ================  =====================================================================

3. ``after_eval(loop, step, metrics)`` of every hook, in list order, right after each
   evaluation and its best checkpoint (rank 0 only). Raising here stops the run (a study's
   pruner does); the step's checkpoint is then not written (at the last step of a one-process
   run the final checkpoint, already being written, is kept).
4. ``after_train(loop)`` of every hook, in list order, once, however the run ended: the logs are
   closed and ``status.json`` holds the final status (``loop.status``: finished, stopped or
   diverged).

What a hook may read is :class:`LoopState` (``loop``). A hook of one's own changes nothing in
it (the built-in hooks keep ``saved``, ``best``, ``result`` and the writes in the background up
to date); it stops the run by raising.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.distributed as tdist

from ganlab.errors import Diverged, Stopped
from ganlab.train.checkpoint import (BestSoFar, in_background, save_best, save_checkpoint,
                                     save_checkpoint_in_background)
from ganlab.train.console import loss_info
from ganlab.train.guard import StopSignals
from ganlab.train.inloop import evaluate
from ganlab.train.logs import RunLogs
from ganlab.train.result import RunResult
from ganlab.train.rundir import write_status

if TYPE_CHECKING:
    from ganlab.config import TrainConfig
    from ganlab.train.build import Session

__all__ = ["Callbacks", "Checkpoints", "Evaluation", "FinalWrite", "Hook", "Logging", "LoopState", "StopSignal"]


class Hook:
    """Something the training loop calls at fixed points; every method is a no-op by default.
    The order of the calls is in this module's docstring."""

    def before_train(self, loop: LoopState) -> None:
        """Once, before the logs open and the first step."""

    def after_step(self, loop: LoopState) -> None:
        """After every step; ``loop.done`` steps are trained."""

    def after_eval(self, loop: LoopState, step: int, metrics: dict[str, float]) -> None:
        """After each in-loop evaluation (rank 0): ``metrics`` are its ``val/...`` values at
        ``step`` steps trained. Raise to stop the run."""

    def after_train(self, loop: LoopState) -> None:
        """Once, however the run ended (``loop.status``), after the final status is written."""


@dataclass(eq=False)
class LoopState:
    """What the hooks of a run see.

    ``cfg``, ``session`` (G, D, optimisers, trick stack), ``dist`` (the processes; ``is_main``),
    ``runtime``, ``run_dir``, the data, ``total`` steps and the ``start`` step; ``step`` the
    index of the step just trained and ``done`` the steps trained; ``log`` the statistics
    (``log.last``: the newest value of each); ``best`` the best evaluation so far; ``saved`` the
    step of the newest checkpoint on disk; ``result`` what :func:`~ganlab.train.train` returns.
    """

    cfg: TrainConfig
    session: Session
    dist: Any
    runtime: Any
    run_dir: Path
    train_data: Any
    val_data: Any
    total: int
    start: int
    resumed: bool
    console: Any
    warn: Callable[[str], None]
    stop: StopSignals
    best: BestSoFar
    progress: bool = True
    hooks: list[Hook] = field(default_factory=list)
    log: RunLogs | None = None
    bar: Any = None  # the progress bar
    bar_task: Any = None
    extractor: Any = None  # the in-loop evaluation's feature network (None where the weights are absent)
    next_batch: Callable | None = None
    step: int = -1
    images_done: int = 0
    saved: int | None = None
    status: str = "finished"
    diverged: Diverged | None = None
    result: RunResult | None = None
    # The last step's writes still running in the background: the final checkpoint, and best.pt
    # with the value it records.
    pending: Future | None = None
    best_pending: tuple[Future, float] | None = None

    @property
    def done(self) -> int:
        return self.step + 1

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def mark_saved(self) -> None:
        self.saved = self.stop.checkpoint = self.done

    def settle(self) -> None:
        """After an exception: wait for the writes still running in the background and record
        those that reached the disk (the status then names them)."""
        pending, best_pending, self.pending, self.best_pending = self.pending, self.best_pending, None, None
        if pending is not None and _written(pending):
            self.mark_saved()
        if best_pending is not None and _written(best_pending[0]) and best_pending[0].result():
            self.best.record(best_pending[1], self.done)


def _written(pending: Future) -> bool:
    """Whether a write in the background reached the disk (waiting for it)."""
    try:
        pending.result()
        return True
    except Exception:
        return False


def _due(every: int, done: int, total: int) -> bool:
    return bool(every and done % every == 0) or done == total


class Logging(Hook):
    """The statistics and the progress bar (see the module's docstring)."""

    def after_step(self, loop: LoopState) -> None:
        loop.log.n_window += 1
        loop.images_done += loop.cfg.batch_size
        if loop.done % loop.cfg.log_every == 0 or loop.done == loop.total:
            loop.log.flush()
            loop.bar.update(loop.bar_task, completed=loop.done, info=loss_info(loop.log.last))


class FinalWrite(Hook):
    """The final checkpoint of a one-process run, written while the final evaluation runs:
    nothing changes the weights any more. :class:`Checkpoints` waits for it."""

    def after_step(self, loop: LoopState) -> None:
        if loop.done == loop.total and not loop.dist.enabled:
            loop.log.flush()  # a NaN logged since the last flush stops the run before it is saved
            loop.pending = save_checkpoint_in_background(loop.run_dir, loop.session, loop.train_data, loop.done)


class Evaluation(Hook):
    """The in-loop evaluation, the best checkpoint and ``after_eval`` (see the module's docstring)."""

    def after_step(self, loop: LoopState) -> None:
        if not (loop.is_main and _due(loop.cfg.eval_every, loop.done, loop.total)):
            return
        log, done = loop.log, loop.done
        log.bus.step = loop.step
        metrics = evaluate(loop.session, loop.val_data, loop.step, loop.run_dir, log.writer, loop.extractor, loop.train_data)
        for k, v in metrics.items():
            log.bus.add(k, v)
        log.flush()
        loop.result.metrics = metrics
        self._keep_best(loop, metrics)
        for hook in loop.hooks:
            hook.after_eval(loop, done, metrics)

    @staticmethod
    def _keep_best(loop: LoopState, metrics: dict[str, float]) -> None:
        best, done = loop.best, loop.done
        value = best.improves(metrics)
        if value is not None:  # best.pt, then status.json naming it (the newest checkpoint unchanged)
            record = {"metric": best.metric, "value": value, "step": done}
            if loop.pending is not None:  # the last step: best.pt goes to disk beside the final checkpoint
                loop.best_pending = (in_background(save_best, loop.run_dir, loop.session, done, record), value)
            elif save_best(loop.run_dir, loop.session, done, record):
                best.record(value, done)
                write_status(loop.run_dir, "running", loop.saved or 0, loop.total, trained_step=done, **best.status())
        elif best.metric != "none" and best.value is None and best.metric not in metrics:
            loop.warn(f"--best-metric {best.metric}: this evaluation did not measure it, so no best "
                      "checkpoint is kept (val/kid needs the Inception weights)")
            loop.best = BestSoFar("none")


class Checkpoints(Hook):
    """Checkpoints every ``--save-every`` steps and at the last; then the step counts as trained."""

    def after_step(self, loop: LoopState) -> None:
        done, total = loop.done, loop.total
        if _due(loop.cfg.save_every, done, total):
            if loop.pending is not None:
                pending, best_pending, loop.pending, loop.best_pending = loop.pending, loop.best_pending, None, None
                pending.result()  # a failed write raises here
                if best_pending is not None and best_pending[0].result():
                    loop.best.record(best_pending[1], done)
            else:
                loop.log.flush()  # every rank: a NaN logged since the last flush stops the run before it is saved
                if loop.is_main:
                    save_checkpoint(loop.run_dir, loop.session, loop.train_data, done)
            loop.mark_saved()
            if loop.is_main and done < total:  # how far a run got, also after it is killed
                write_status(loop.run_dir, "running", done, total, trained_step=done, **loop.best.status())
        loop.result.step = done


def _stop_agreed(stop: StopSignals, dist) -> int | None:
    """The signal every process stops on after this step, or None: under torchrun the processes
    agree (the largest signal number any of them got), so that every rank stops at the same step.
    The agreement is a collective that waits for the device: asked for only where the loop reads
    its statistics back anyway (a logging step), never once per step."""
    if not dist.enabled:
        return stop.signum
    flag = torch.tensor([stop.signum or 0], device=dist.device if dist.device is not None and dist.device.type == "cuda" else "cpu")
    tdist.all_reduce(flag, op=tdist.ReduceOp.MAX)
    return int(flag.item()) or None


class StopSignal(Hook):
    """SIGINT/SIGTERM: the step is done; save it and stop. Alone, checked after every step (a
    Python int); under torchrun at logging steps, where the loop already waits for the device."""

    def after_step(self, loop: LoopState) -> None:
        done = loop.done
        agree = done < loop.total and (not loop.dist.enabled or done % loop.cfg.log_every == 0)
        signum = _stop_agreed(loop.stop, loop.dist) if agree else None
        if signum is None:
            return
        loop.log.flush()
        if loop.saved != done:
            if loop.is_main:
                save_checkpoint(loop.run_dir, loop.session, loop.train_data, done)
            loop.mark_saved()
        raise Stopped(signum, loop.run_dir, done, saved=True)


class Callbacks(Hook):
    """``train(on_start=..., on_eval=...)``: ``on_start(run_dir)`` before training,
    ``on_eval(step, metrics)`` after each evaluation."""

    def __init__(self, on_start: Callable[[Path], None] | None = None,
                 on_eval: Callable[[int, dict[str, float]], None] | None = None):
        self.on_start, self.on_eval = on_start, on_eval

    def before_train(self, loop: LoopState) -> None:
        if self.on_start is not None:
            self.on_start(loop.run_dir)

    def after_eval(self, loop: LoopState, step: int, metrics: dict[str, float]) -> None:
        if self.on_eval is not None:
            self.on_eval(step, metrics)


def default_hooks(user: list[Hook]) -> list[Hook]:
    """The built-in hooks in their order, with the user's before the stop signal."""
    return [Logging(), FinalWrite(), Evaluation(), Checkpoints(), *user, StopSignal()]
