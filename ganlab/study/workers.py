"""``ganlab study --n-jobs N``: the trials of one command run in N processes, not threads.

A training run relies on state that is global to its process: the torch random generator
(network initialisation, and the dropout masks of every step), numpy's and Python's generators
(saved in and restored from every checkpoint), torch's thread count and cudnn flags. Two trials
in threads of one process would draw each other's dropout masks and restore each other's
generators, so no trial would be reproducible. This process therefore starts N - 1 more workers
of the same study on the same storage (``ganlab study ... --n-jobs 1``), runs its own share of the
trials, and waits for them; every trial trains alone in its process, exactly as it would one
after the other. Each extra worker writes its log to ``<out>/<study>/worker-K.log``.

Each worker trains with its share of the cores (:mod:`ganlab.threads`): ``cores // N`` torch
threads unless ``--threads`` or ``OMP_NUM_THREADS`` says otherwise, set in this process before its
first run and passed to the others as ``--threads``; without it, N processes would each start a
thread per core and spin against each other. ``--n-jobs auto`` (:func:`plan_workers`) picks N. On
several GPUs the workers take one GPU each (``--device cuda:K``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from ganlab import threads as threads_module
from ganlab.threads import AUTO, WHY_ENV, Budget, apply_budget, worker_budget

if TYPE_CHECKING:
    from ganlab.config import TrainConfig

__all__ = ["Plan", "Workers", "auto_jobs", "plan_workers", "shares", "worker_bytes"]


@dataclass(frozen=True)
class Plan:
    """How a study or confirmation command runs its runs: ``n_jobs`` processes, each with
    ``budget`` threads, worker K on ``devices[K]`` (None: the run's own ``--device``)."""

    n_jobs: int
    budget: Budget
    devices: tuple[str | None, ...]
    why: str = ""  # how --n-jobs auto chose, in words

    def describe(self) -> str:
        jobs = f"{self.n_jobs} worker process{'es' if self.n_jobs != 1 else ''}" + (f" ({self.why})" if self.why else "")
        gpus = sorted({d for d in self.devices if d})
        return f"{jobs}, {self.budget.describe()} each" + (f", on {', '.join(gpus)}" if len(gpus) > 1 else "")

    def argv(self, k: int) -> list[str]:
        """What worker ``k``'s command line adds: its threads (unless it inherits OMP_NUM_THREADS)
        and its GPU."""
        extra = [] if self.budget.why == "OMP_NUM_THREADS" else ["--threads", str(self.budget.threads)]
        device = self.devices[k] if k < len(self.devices) else None
        return extra + (["--device", device] if device else [])


def plan_workers(n_jobs: int | str, threads: int | None, cfg: "TrainConfig", runs: int | None = None,
                 *, apply: bool = True) -> Plan:
    """Resolve ``--n-jobs`` (a number or ``auto``: :func:`auto_jobs`) and
    ``--threads`` for runs of ``cfg``, and (``apply``) give this process, worker 0, its budget."""
    why = ""
    if n_jobs == AUTO:
        n_jobs, why = auto_jobs(cfg, runs, threads)
        why = f"--n-jobs auto: {why}"
    budget = worker_budget(int(n_jobs), threads)
    devices: tuple[str | None, ...] = (None,) * int(n_jobs)
    if int(n_jobs) > 1:
        devices = _spread_over_gpus(cfg.device, int(n_jobs))
    if apply:
        budget = apply_budget(budget, process=True)
    return Plan(int(n_jobs), budget, devices, why)


def _spread_over_gpus(device: str, n_jobs: int) -> tuple[str | None, ...]:
    """Worker K on GPU K (mod the GPUs visible) when the runs are on CUDA and no GPU is named."""
    if device not in ("auto", "cuda"):
        return (None,) * n_jobs
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count < 2:
        return (None,) * n_jobs
    return tuple(f"cuda:{k % count}" for k in range(n_jobs))


def shares(n_trials: int | None, n_jobs: int) -> list[int | None]:
    """This command's trials split over ``n_jobs`` workers (None: each until the timeout)."""
    if n_trials is None:
        return [None] * n_jobs
    return [n_trials // n_jobs + (1 if i < n_trials % n_jobs else 0) for i in range(n_jobs)]


class Workers:
    """The extra worker processes of one ``ganlab study --n-jobs N`` command."""

    def __init__(self, argv: Callable[[int, int | None], Sequence[str]], trial_shares: Sequence[int | None],
                 log_dir: Path, plan: Plan | None = None):
        self.procs: list[tuple[subprocess.Popen, Path]] = []
        log_dir.mkdir(parents=True, exist_ok=True)
        for i, share in enumerate(trial_shares):
            if i == 0 or share == 0:  # worker 0 is this process
                continue
            log = log_dir / f"worker-{i}.log"
            with open(log, "w") as fh:
                extra = plan.argv(i) if plan is not None else []
                env = None
                if plan is not None and plan.budget.why != "OMP_NUM_THREADS":
                    # the libraries that read it at start-up (OpenMP, MKL) size their pools to the share too
                    env = {**os.environ, "OMP_NUM_THREADS": str(plan.budget.threads), WHY_ENV: plan.budget.why}
                proc = subprocess.Popen([sys.executable, "-m", "ganlab", *argv(i, share), *extra], stdout=fh,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
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


# --n-jobs auto: the memory a worker needs, from the cost model ------------------------------------
def worker_bytes(cfg: "TrainConfig") -> int | None:
    """The memory one worker training ``cfg`` on the CPU takes: the process itself, a training step
    (ganlab.train.memory's estimate) and its decoded images (at most ``--cache-gb``)."""
    try:
        from ganlab.runtime import runtime_for
        from ganlab.train.memory import estimate

        step = estimate(cfg, runtime_for(cfg).precision).total(cfg.batch_size)
    except Exception:  # an estimate only caps the workers; without it nothing is capped
        return None
    return threads_module.PER_PROCESS_BYTES + step + min(int(cfg.cache_gb * 2**30), _images_bytes(cfg))


def _images_bytes(cfg: "TrainConfig") -> int:
    """The decoded images of ``cfg``'s folders, roughly: files x (load size)^2 x 3 bytes x 1.5 for a
    3:2 photograph (the full ``--cache-gb`` where the images keep their own size)."""
    from pathlib import Path

    if cfg.effective_load_size == 0:
        return int(cfg.cache_gb * 2**30)
    files = 0
    for folder in (cfg.data, cfg.val_data, cfg.data_a, cfg.data_b, cfg.val_data_a, cfg.val_data_b):
        if folder is None:
            continue
        try:
            files += sum(1 for p in Path(folder).expanduser().iterdir() if p.suffix.lower() in
                         (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"))
        except OSError:
            continue
    side = cfg.effective_load_size
    return int(files * side * side * 3 * 1.5)


def auto_jobs(cfg: "TrainConfig", runs: int | None = None, threads: int | None = None) -> tuple[int, str]:
    """``--n-jobs auto`` for runs of ``cfg`` on this machine (:func:`ganlab.threads.jobs_rule`)."""
    from ganlab.runtime import resolve_device

    device = resolve_device(cfg.device)
    cuda = 0
    if device.type == "cuda":
        import torch

        cuda = 1 if device.index is not None else torch.cuda.device_count()  # cuda:K names one GPU
    free = None
    if not cuda:
        import torch

        from ganlab.train.memory import available_bytes

        where = available_bytes(torch.device("cpu"))
        free = where[0] if where else None
    return threads_module.jobs_rule(cuda_devices=cuda, cores=threads_module.usable_cores(), runs=runs,
                                    worker_bytes=worker_bytes(cfg) if not cuda else None, free_bytes=free,
                                    threads=threads if threads is not None else threads_module.env_threads())
