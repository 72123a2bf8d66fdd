"""``ganlab study --n-jobs N``: the trials of one command run in N processes, not threads.

A training run relies on state that is global to its process: the torch random generator
(network initialisation, and the dropout masks of every step), numpy's and Python's generators
(saved in and restored from every checkpoint), torch's thread count and cudnn flags. Two trials
in threads of one process would draw each other's dropout masks and restore each other's
generators, so no trial would be reproducible. This process therefore starts N - 1 more workers
of the same study on the same storage (``ganlab study ... --n-jobs 1``), runs its own share of the
trials, and waits for them; every trial trains alone in its process, exactly as it would one
after the other. Each extra worker writes its log to ``<out>/<study>/worker-K.log``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence

__all__ = ["Workers", "shares"]


def shares(n_trials: int | None, n_jobs: int) -> list[int | None]:
    """This command's trials split over ``n_jobs`` workers (None: each until the timeout)."""
    if n_trials is None:
        return [None] * n_jobs
    return [n_trials // n_jobs + (1 if i < n_trials % n_jobs else 0) for i in range(n_jobs)]


class Workers:
    """The extra worker processes of one ``ganlab study --n-jobs N`` command."""

    def __init__(self, argv: Callable[[int, int | None], Sequence[str]], trial_shares: Sequence[int | None],
                 log_dir: Path):
        self.procs: list[tuple[subprocess.Popen, Path]] = []
        log_dir.mkdir(parents=True, exist_ok=True)
        for i, share in enumerate(trial_shares):
            if i == 0 or share == 0:  # worker 0 is this process
                continue
            log = log_dir / f"worker-{i}.log"
            with open(log, "w") as fh:
                proc = subprocess.Popen([sys.executable, "-m", "ganlab", *argv(i, share)], stdout=fh,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            self.procs.append((proc, log))

    @property
    def pids(self) -> set[int]:
        return {p.pid for p, _ in self.procs}

    def signal(self, signum: int) -> None:
        """Pass a stop on to every worker still running (each saves and stops its own trial)."""
        for proc, _ in self.procs:
            if proc.poll() is None:
                try:
                    proc.send_signal(signum)
                except ProcessLookupError:
                    pass

    def wait(self) -> list[str]:
        """Wait for every worker; one line for each that did not end well."""
        problems = []
        for proc, log in self.procs:
            while True:
                try:
                    code = proc.wait()
                    break
                except KeyboardInterrupt:  # a Ctrl-C while waiting: pass it on, keep waiting
                    self.signal(signal.SIGINT)
            if code != 0:
                problems.append(f"worker {proc.pid} ended with exit code {code}; its log: {log}")
        return problems
