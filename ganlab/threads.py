"""The CPU thread budget of a process, and how many worker processes a study or confirmation runs.

A training run on the CPU spends its time in torch's intra-op thread pool, which takes every core
by default. Two runs side by side (``ganlab study --n-jobs 2``, ``ganlab confirm --n-jobs 2``, or
any other torch process) then run twice as many busy threads as there are cores, and the pools
spin against each other: on 2 cores two such runs took 10x as long as one. So every process
ganlab starts for a study or a confirmation gets its share of the cores, and ``ganlab train
--threads N`` sets it for one run:

* **cores** are the CPUs this process may run on (``os.sched_getaffinity``: what ``taskset``, a
  container or a batch scheduler allows), not the machine's count;
* **the budget** of a process is, first of all, an explicit ``--threads N``; else the
  ``OMP_NUM_THREADS`` of the environment, where the user set it; else ``cores // n_jobs`` (at
  least 1) for each of the ``n_jobs`` workers of a study or confirmation, and every core for a run
  alone. Inter-op threads (torch's pool for parallel graph branches, which ganlab does not use)
  are set to 1, once per process, before any work;
* ``--n-jobs auto`` (:func:`auto_jobs`) is the number of workers that gives the most runs per
  hour: one per GPU on CUDA; on a CPU one single-threaded worker per core, fewer where the runs
  waiting are fewer or where the workers would not fit in the memory available.

Nothing here imports torch until a budget is applied, so the command line stays fast.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from ganlab.errors import UsageError


__all__ = ["AUTO", "WHY_ENV", "Budget", "apply_budget", "budget_for_run", "jobs_rule", "kept", "parse_jobs", "parse_threads",
           "process_budget", "usable_cores", "worker_budget"]

AUTO = "auto"
WHY_ENV = "GANLAB_THREADS_WHY"  # set by a study's or confirmation's command for its workers
PER_PROCESS_BYTES = 600 * 2**20  # Python, torch and its libraries, before any network or image


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        return max(1, os.cpu_count() or 1)


def parse_threads(value, flag: str = "--threads") -> int | None:
    """``auto`` -> None; a whole number >= 1 -> itself; anything else: one line naming the fix."""
    if value is None or (isinstance(value, str) and value.strip().lower() == AUTO):
        return None
    try:
        n = int(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        n = None
    if n is None or (isinstance(value, float) and not value.is_integer()) or n < 1:
        raise UsageError(f"{flag} {value}: give a whole number of threads >= 1, or auto (the cores this process "
                         f"may use, {usable_cores()} here, shared among the workers of --n-jobs)")
    return n


def parse_jobs(value, flag: str = "--n-jobs") -> int | str:
    """``auto`` or a whole number >= 1 (as typed on the command line)."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or str(value).strip() != str(n):
        raise UsageError(f"{flag} {value}: must be a whole number >= 1, or auto (the most runs per hour on this machine)")
    return n


@dataclass(frozen=True)
class Budget:
    """The threads a process trains with, and why."""

    threads: int
    why: str
    interop: int | None = None  # the inter-op threads, once applied

    def describe(self) -> str:
        return f"{self.threads} thread{'s' if self.threads != 1 else ''} ({self.why})"


_process: Budget | None = None  # the budget a command gave this process (a study's or a confirmation's worker)
_interop_set = False


def env_threads() -> int | None:
    """``OMP_NUM_THREADS`` where the user set it to a whole number >= 1, else None."""
    raw = os.environ.get("OMP_NUM_THREADS", "").strip()
    try:
        n = int(raw.split(",")[0])
    except ValueError:
        return None
    return n if n >= 1 else None


def worker_budget(n_jobs: int, threads: int | None = None, cores: int | None = None) -> Budget:
    """The budget of each of the ``n_jobs`` workers of a study or confirmation: ``--threads``,
    else ``OMP_NUM_THREADS``, else its share of the cores (``cores // n_jobs``, at least 1)."""
    if threads is not None:
        # a worker started by a study or confirmation is told why its parent chose this share
        return Budget(threads, os.environ.pop(WHY_ENV, None) or "--threads")
    env = env_threads()
    if env is not None:
        return Budget(env, "OMP_NUM_THREADS")
    cores = usable_cores() if cores is None else cores
    share = max(1, cores // n_jobs)
    return Budget(share, f"{cores} cores / {n_jobs} workers" if n_jobs > 1 else f"all {cores} cores")


def apply_budget(budget: Budget, *, process: bool = False) -> Budget:
    """Set torch's intra-op threads to the budget and, once per process, its inter-op threads to 1.
    ``process``: this budget holds for every run of the process (a study's or a confirmation's
    worker), which ``--threads auto`` then keeps. Returns the budget as applied."""
    global _process, _interop_set
    import torch

    torch.set_num_threads(budget.threads)
    if not _interop_set:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # torch allows it once, before any inter-op work; whatever was set stays
            pass
        _interop_set = True
    applied = Budget(torch.get_num_threads(), budget.why, torch.get_num_interop_threads())
    if process:
        _process = applied
    return applied


@contextlib.contextmanager
def kept():
    """Put torch's thread count and the process budget back as they were on leaving (a command or
    a run called from Python, a notebook or a test, leaves the process's threads as it found them)."""
    global _process
    import torch

    before, budget = torch.get_num_threads(), _process
    try:
        yield
    finally:
        torch.set_num_threads(before)
        _process = budget


def process_budget() -> Budget | None:
    """The budget a study or confirmation gave this process (None: none was given)."""
    return _process


def budget_for_run(threads: str | int | None) -> Budget:
    """The budget of one training run: its ``--threads`` when a number; for ``auto`` the budget
    of the process (a worker's share), else ``OMP_NUM_THREADS``, else every usable core."""
    n = parse_threads(threads)
    if n is not None:
        return Budget(n, "--threads")
    if _process is not None:
        return Budget(_process.threads, _process.why)
    env = env_threads()
    if env is not None:
        return Budget(env, "OMP_NUM_THREADS")
    cores = usable_cores()
    return Budget(cores, f"auto: all {cores} cores")


# --- --n-jobs auto ----------------------------------------------------------------------------

def jobs_rule(*, cuda_devices: int, cores: int, runs: int | None, worker_bytes: int | None,
              free_bytes: int | None, threads: int | None = None) -> tuple[int, str]:
    """``--n-jobs auto``: (workers, the reason in words).

    * On CUDA: one worker per visible GPU (each trains on its own GPU).
    * On a CPU: one worker per core, each with one thread (where ``--threads`` or
      ``OMP_NUM_THREADS`` fixes each worker's ``threads``: ``cores // threads`` workers). Independent runs need no
      synchronisation, while one run's intra-op threads share every convolution and wait for the
      slowest thread at each of them. At the sizes a study searches (64 px, batch 4, 32-channel
      networks, on 2 cores) two one-thread runs side by side gave 1.5x the runs per hour of one
      run on both cores (docs/performance.md).
    * Never more workers than runs waiting (``runs``; an idle worker only costs its start-up), and
      never more than fit in the memory available (``free_bytes`` / ``worker_bytes``, with a fifth
      kept free).
    """
    if cuda_devices > 0:
        n, why = cuda_devices, f"one worker per GPU ({cuda_devices} visible)"
    elif threads is not None and threads > 1:
        n, why = max(1, cores // threads), f"{cores} usable cores / {threads} threads per worker"
    else:
        n, why = cores, f"one single-threaded worker per core ({cores} usable)"
    if runs is not None and runs < n:
        n, why = max(1, runs), f"{why}, capped by the {runs} run{'s' if runs != 1 else ''} to go"
    if cuda_devices == 0 and worker_bytes and free_bytes:
        fit = max(1, int(0.8 * free_bytes) // worker_bytes)
        if fit < n:
            n, why = fit, f"{why}, capped by memory: each worker needs about {_gib(worker_bytes)}, {_gib(free_bytes)} available"
    return n, why


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"
