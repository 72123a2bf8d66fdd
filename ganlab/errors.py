"""Errors a user can act on: one line that names the problem and the fix, and what stops a
training run (a divergence, a signal). Plain Python: importing this module loads no library."""

from __future__ import annotations

import signal

__all__ = ["Diverged", "GanlabError", "Stopped", "UsageError"]


class GanlabError(Exception):
    """A problem with the user's input or environment; printed as one line, no traceback."""

    exit_code = 1


class UsageError(GanlabError):
    """A bad flag, value, key or file given by the user (exit code 2)."""

    exit_code = 2


class Diverged(GanlabError):
    """A logged value became NaN or Inf; the run stops and records where."""

    def __init__(self, step: int, name: str, value: float):
        super().__init__(
            f"training diverged at step {step}: {name} = {value}; lower --lr, add a stabilising "
            f"--trick, or resume from an earlier checkpoint"
        )
        self.step, self.name, self.value = step, name, value


class Stopped(Exception):
    """A run stopped by SIGINT or SIGTERM. After the first signal it finished its step and wrote a
    checkpoint (``saved`` is True); a second signal, or one before training began, stops it at
    once and the newest checkpoint on disk (``step``, None when there is none) is where it goes
    on. The exit code is the shell's for the signal: 130 for SIGINT, 143 for SIGTERM. Not a
    :class:`GanlabError`: a study must not take a stop for a failed trial and go on to the next."""

    def __init__(self, signum: int, run_dir, step: int | None, *, saved: bool, trial: int | None = None):
        name = signal.Signals(signum).name
        if step is None:
            where = "before its first checkpoint; nothing was saved"
            then = "start it again" if run_dir is None else f"start it again (its folder {run_dir} holds no checkpoint)"
            if trial is not None:
                then = f"study trial {trial} is queued again and starts afresh at the next worker"
        else:
            where = (f"at step {step}; checkpoint step-{step:07d}.pt written" if saved
                     else f"at once (a second signal); its newest checkpoint is step {step}")
            then = (f"continue with: ganlab train --resume {run_dir}" if trial is None else
                    f"study trial {trial} is queued again and the next worker continues it from there ({run_dir})")
        super().__init__(f"{name}: the run stopped {where}; {then}")
        self.signum, self.run_dir, self.step, self.saved, self.trial = signum, run_dir, step, saved, trial
        self.exit_code = 128 + signum
