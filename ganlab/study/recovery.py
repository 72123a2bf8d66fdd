"""Trials whose worker died: found by the worker's stamp (host, pid, start time) or by the
storage's heartbeats, failed, and queued again once with the parameters they had drawn."""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime
from pathlib import Path

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from ganlab.study._optuna import fail_trial
from ganlab.study.record import PER_WORKER, WORKER, trial_record, write_trial
from ganlab.study.spec import StudySpec

__all__ = ["RESUME_ATTR", "WORKER_ATTR", "inside", "mark_killed_run", "recover_dead_trials", "requeue", "stamp_worker"]


WORKER_ATTR = WORKER  # the trial record's field (ganlab.study.record)
RESUME_ATTR = "resume_from"  # a retry of a trial stopped by a signal continues this run folder



def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), telling a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _process_alive(pid: int, start: str | None) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        if fields[0] in (b"Z", b"X"):  # killed, not yet reaped
            return False
        return start is None or fields[19].decode() == start
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def stamp_worker(trial) -> None:
    """Record which process runs ``trial`` (host, pid, its start time), first thing in a trial."""
    write_trial(trial, worker={"host": socket.gethostname(), "pid": os.getpid(),
                                      "pid_start": _process_start(os.getpid()), "trial": trial.number})


def _worker_is_dead(trial, grace_period: float) -> bool:
    stamp = trial_record(trial).worker
    if isinstance(stamp, dict) and stamp.get("trial") == trial.number:
        if stamp.get("host") != socket.gethostname():
            return False  # another machine's worker: its storage's heartbeats judge it
        return not _process_alive(int(stamp["pid"]), stamp.get("pid_start"))
    # No stamp (or one inherited from the trial it retries): the worker died between taking the
    # trial and its first line, or is just about to write it.
    started = trial.datetime_start
    return started is not None and (datetime.now() - started).total_seconds() > grace_period


def recover_dead_trials(study, spec: StudySpec, runs: str | os.PathLike | None = None) -> list[int]:
    """Fail the RUNNING trials whose worker process is gone and enqueue each once for a retry,
    as Optuna's RetryFailedTrialCallback does for a stale heartbeat. Needed for the journal
    storage (no heartbeats), and for the moment before an RDB trial's first heartbeat. Of several
    workers that find the same trial, the storage lets exactly one fail it. With ``runs`` (the
    study's runs folder) each failed trial's run folder there is marked ``stopped``."""
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _worker_is_dead(trial, spec.grace_period):
            continue
        try:
            if not fail_trial(study, trial):
                continue
        except (UpdateFinishedTrialError, KeyError):
            continue  # another worker failed it first (or it finished after all)
        except Exception:  # noqa: BLE001 - a busy storage: the next pass tries again
            continue
        failed.append(trial.number)
        mark_killed_run(trial, spec, runs)
        requeue(study, trial, spec)
    return failed


def inside(path: str | os.PathLike, root: str | os.PathLike) -> Path | None:
    """``path`` resolved, when it lies inside ``root`` (links followed); else None. Paths read
    from a study's storage are data that any worker, or anyone with the database, could have
    written: ganlab touches only those inside the study's runs folder."""
    try:
        real, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    except (OSError, ValueError):
        return None
    return real if real != base and real.is_relative_to(base) else None


def mark_killed_run(trial, spec: StudySpec, runs: str | os.PathLike | None) -> None:
    """A dead worker's run folder says ``stopped``, not ``running`` for ever: only a folder inside
    ``runs`` whose status says running and whose trial.json names this study and trial."""
    run_dir = trial_record(trial).run_dir
    if not isinstance(run_dir, str) or runs is None or (folder := inside(run_dir, runs)) is None:
        return
    try:
        status = json.loads((folder / "status.json").read_text())
        tag = json.loads((folder / "trial.json").read_text())
    except (OSError, ValueError):
        return
    if not (isinstance(status, dict) and status.get("status") == "running" and isinstance(tag, dict)
            and tag.get("study") == spec.name and tag.get("trial") == trial.number):
        return
    from ganlab.train.rundir import write_status

    extra = {k: v for k, v in status.items() if k not in ("status", "step", "total")}
    try:
        write_status(folder, "stopped", int(status.get("step") or 0), int(status.get("total") or 0),
                     **extra, reason="its worker process was killed; the trial is queued again")
    except (OSError, ValueError, TypeError):
        pass  # a folder that cannot be written only keeps its stale status


def requeue(study, trial, spec: StudySpec, resume_from: str | None = None) -> bool:
    """Queue ``trial`` once more with the parameters it drew (within ``max_retry``); with
    ``resume_from``, the retry continues that run folder from its newest checkpoint."""
    system_attrs = {"failed_trial": trial.number, "retry_history": [], **trial.system_attrs}
    system_attrs["retry_history"] = [*system_attrs["retry_history"], trial.number]
    system_attrs.pop(RESUME_ATTR, None)
    if resume_from is not None:
        system_attrs[RESUME_ATTR] = resume_from
    if spec.max_retry < len(system_attrs["retry_history"]):
        return False
    study.add_trial(optuna.create_trial(
        state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        user_attrs={k: v for k, v in trial.user_attrs.items() if k not in PER_WORKER},
        system_attrs=system_attrs,
    ))
    return True
