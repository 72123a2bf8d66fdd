"""Several ``ganlab study`` workers on one storage, killed at random: no trial is lost or
duplicated. On one machine the storage is Optuna's JournalStorage on a JournalFileBackend
(``--storage journal:///path/study.log``); across machines, PostgreSQL.

A worker stamps each trial with its host and pid when the trial starts. A worker that starts
(and every worker after each trial) fails the RUNNING trials whose process is gone and queues
each once again, as Optuna's RetryFailedTrialCallback does for a stale heartbeat.

The fast tests (default suite) kill one worker in the middle of a trial; the 20-trial tests with
random kills are marked slow: ``python -m pytest -m slow tests/test_concurrency.py``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from test_study import TINY_TRAIN
from test_study_postgres import postgres_url  # noqa: F401 - the PostgreSQL server fixture

ENV = dict(os.environ, PYTHONWARNINGS="ignore")


def _study_file(tmp_path: Path, data: Path, name: str, grace: int) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f"# Question: a test.\n[study]\nname = \"{name}\"\nobjectives = [\"val_l1\"]\nsampler = \"random\"\n"
        f"steps = 4\neval_every = 4\nheartbeat_interval = 2\ngrace_period = {grace}\nmax_retry = 10\n"
        "[search]\nlr = { low = 1e-4, high = 1e-3, log = true }\n" + TINY_TRAIN.format(data=data))
    return path


class Workers:
    """Start, kill and reap ``ganlab study`` worker processes on one study."""

    def __init__(self, tmp_path: Path, study_file: Path, url: str, name: str):
        self.tmp_path, self.study_file, self.url, self.name = tmp_path, study_file, url, name
        self.live: list[subprocess.Popen] = []
        self.killed = 0
        self.started = 0
        self._study = None

    def start(self, trials: int) -> subprocess.Popen:
        log = open(self.tmp_path / f"worker{self.started}.log", "w")
        self.started += 1
        proc = subprocess.Popen(
            [sys.executable, "-m", "ganlab", "study", "--study", str(self.study_file), "--storage", self.url,
             "--trials", str(trials), "--out", str(self.tmp_path / "runs")],
            stdout=log, stderr=subprocess.STDOUT, env=ENV, start_new_session=True)
        proc.log = log.name  # type: ignore[attr-defined]
        self.live.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()  # reaped: its pid is gone, as after any crash
        self.live.remove(proc)
        self.killed += 1

    def reap(self) -> None:
        for proc in list(self.live):
            if proc.poll() is not None:
                assert proc.returncode == 0, Path(proc.log).read_text()[-4000:]
                self.live.remove(proc)

    def trials(self):
        if self._study is None:
            try:
                self._study = optuna.load_study(study_name=self.name, storage=_storage(self.url))
            except KeyError:  # no worker has created it yet
                return []
        return self._study.get_trials(deepcopy=False)

    def drain(self, grace: float) -> None:
        """After the last worker: run workers until no trial is RUNNING (a dead worker's) or WAITING."""
        self.wait_all()
        for _ in range(20):
            open_ = [t for t in self.trials() if t.state in (TrialState.RUNNING, TrialState.WAITING)]
            if not open_:
                return
            time.sleep(grace / 2)
            self.start(len(open_))
            self.wait_all()
        raise AssertionError(f"trials still open: {[(t.number, t.state.name) for t in self.trials()]}")

    def wait_all(self) -> None:
        while self.live:
            self.reap()
            time.sleep(0.2)

    def stop(self) -> None:
        for proc in list(self.live):
            self.kill(proc)


def _storage(url: str):
    if url.startswith("journal://"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(url[len("journal://"):]))
    return url


def _check_nothing_lost_or_duplicated(trials, target: int) -> dict:
    """The invariants, whatever the kills hit."""
    numbers = sorted(t.number for t in trials)
    assert numbers == list(range(len(trials))), "trial numbers have a gap"
    states = Counter(t.state for t in trials)
    assert states[TrialState.RUNNING] == 0 and states[TrialState.WAITING] == 0, states
    assert states[TrialState.COMPLETE] >= target, states
    # every failed trial was retried exactly once ...
    retried_from = Counter(t.system_attrs["retry_history"][-1] for t in trials if "retry_history" in t.system_attrs)
    for t in trials:
        if t.state == TrialState.FAIL:
            assert retried_from[t.number] == 1, (t.number, retried_from[t.number])
        else:
            assert retried_from[t.number] == 0, t.number  # nothing that finished is run again
    # ... with its own parameters, and each chain of retries ends in exactly one finished trial
    by_number = {t.number: t for t in trials}
    chains: dict[int, list] = defaultdict(list)
    for t in trials:
        origin = t.system_attrs.get("failed_trial", t.number)
        chains[origin].append(t)
        if origin != t.number:  # a retry keeps the parameters its failed trial had drawn (none if it died first)
            assert by_number[origin].params.items() <= t.params.items()
    for origin, members in chains.items():
        finished = [m for m in members if m.state == TrialState.COMPLETE]
        assert len(finished) == 1, (origin, [(m.number, m.state.name) for m in members])
    run_dirs = [t.user_attrs["run_dir"] for t in trials if t.state == TrialState.COMPLETE]
    assert len(run_dirs) == len(set(run_dirs)), "two finished trials share a run folder"
    return {"trials": len(trials), "complete": states[TrialState.COMPLETE], "failed (killed)": states[TrialState.FAIL]}


def _one_kill_mid_trial(tmp_path, image_dir, url: str, name: str, grace: int):
    f = _study_file(tmp_path, image_dir, name, grace)
    w = Workers(tmp_path, f, url, name)
    try:
        victim = w.start(4)
        w.start(2)
        deadline = time.monotonic() + 600
        target = None
        while target is None and time.monotonic() < deadline:
            w.reap()
            assert victim in w.live, "the first worker finished before it could be killed"
            running = [t for t in w.trials() if t.state == TrialState.RUNNING
                       and t.user_attrs.get("worker", {}).get("pid") == victim.pid]
            if running and any(t.state == TrialState.COMPLETE for t in w.trials()):
                # Freeze the worker, then make sure its trial is still running: a busy machine
                # must not let the trial finish between the look and the kill.
                os.killpg(victim.pid, signal.SIGSTOP)
                now = {t.number: t.state for t in w.trials()}
                if now.get(running[0].number) == TrialState.RUNNING:
                    target = running[0]
                    break
                os.killpg(victim.pid, signal.SIGCONT)
            time.sleep(0.1)
        assert target is not None, "never saw the first worker in a trial"
        w.kill(victim)
        w.drain(grace)
    finally:
        w.stop()
    trials = w.trials()
    summary = _check_nothing_lost_or_duplicated(trials, target=2)
    killed = next(t for t in trials if t.number == target.number)
    assert killed.state == TrialState.FAIL  # the kill landed inside this trial ...
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == target.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE  # ... and it was run again, once
    return summary


def _random_kills(tmp_path, image_dir, url: str, name: str, grace: int, target: int = 20, kills: int = 6, seed: int = 0):
    f = _study_file(tmp_path, image_dir, name, grace)
    w = Workers(tmp_path, f, url, name)
    rng = random.Random(seed)
    try:
        for _ in range(3):
            w.start(4)
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.2, 2.5))
            w.reap()
            done = sum(t.state == TrialState.COMPLETE for t in w.trials())
            if done >= target:
                break
            # kill a worker that is inside a trial (a kill during start-up proves little)
            busy = {t.user_attrs.get("worker", {}).get("pid") for t in w.trials() if t.state == TrialState.RUNNING}
            candidates = [p for p in w.live if p.pid in busy]
            if w.killed < kills and candidates:
                w.kill(rng.choice(candidates))
            while len(w.live) < 3:
                w.start(4)
        w.drain(grace)
    finally:
        w.stop()
    summary = _check_nothing_lost_or_duplicated(w.trials(), target)
    assert summary["failed (killed)"] >= 1, "no kill landed inside a trial; the test proved nothing"
    print(f"\n{name}: {w.killed} workers killed, {summary}")
    return summary


# ---------------------------------------------------------------------------------------------


def journal_url(tmp_path: Path) -> str:
    return f"journal://{tmp_path / 'study.log'}"


def test_journal_storage_a_killed_worker_loses_and_duplicates_nothing(tmp_path, image_dir):
    _one_kill_mid_trial(tmp_path, image_dir, journal_url(tmp_path), "journal-fast", grace=5)


def test_postgres_a_killed_worker_loses_and_duplicates_nothing(tmp_path, image_dir, postgres_url):  # noqa: F811
    _one_kill_mid_trial(tmp_path, image_dir, postgres_url, "pg-fast", grace=10)


@pytest.mark.slow
def test_journal_storage_20_trials_with_workers_killed_at_random(tmp_path, image_dir):
    _random_kills(tmp_path, image_dir, journal_url(tmp_path), "journal-20", grace=5)


@pytest.mark.slow
def test_postgres_20_trials_with_workers_killed_at_random(tmp_path, image_dir, postgres_url):  # noqa: F811
    _random_kills(tmp_path, image_dir, postgres_url, "pg-20", grace=10)


def test_the_journal_url_forms(tmp_path):
    from ganlab.study.storage import is_journal, open_storage

    assert is_journal("journal:///abs/study.log") and is_journal("runs/study.log")
    assert not is_journal("sqlite:///runs/studies.db") and not is_journal("postgresql://u@h/db")
    for url in (f"journal://{tmp_path / 'a' / 'study.log'}", str(tmp_path / "b" / "study.log")):
        storage = open_storage(url)
        study = optuna.create_study(study_name="s", storage=storage)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        assert len(optuna.load_study(study_name="s", storage=open_storage(url)).trials) == 2


def test_a_dead_workers_trial_is_failed_and_queued_once_even_when_two_workers_find_it(tmp_path):
    """Two workers that start together both see the dead worker's trial; the storage lets one fail
    it, so it is queued exactly once. A trial whose worker lives is left alone."""
    from ganlab.study.recovery import recover_dead_trials
    from ganlab.study.spec import StudySpec
    from ganlab.study.storage import open_storage

    url = f"journal://{tmp_path / 'study.log'}"
    spec = StudySpec(name="s", objectives=("val_l1",), grace_period=5, max_retry=3)
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for pid in (dead.pid, os.getpid()):
        trial = study.ask()
        trial.suggest_float("lr", 1e-4, 1e-3, log=True)
        trial.set_user_attr("worker", {"host": os.uname().nodename, "pid": pid, "pid_start": None, "trial": trial.number})
    import socket

    assert socket.gethostname() == os.uname().nodename
    other = optuna.load_study(study_name="s", storage=open_storage(url))  # a second worker's view
    first, second = recover_dead_trials(study, spec), recover_dead_trials(other, spec)
    assert sorted(first + second) == [0]
    trials = optuna.load_study(study_name="s", storage=open_storage(url)).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    assert trials[2].system_attrs["failed_trial"] == 0 and trials[2].params == trials[0].params
    assert "worker" not in trials[2].user_attrs  # the dead worker's stamp is not inherited


# ---------------------------------------------------------------------------------------------
# --n-jobs: parallel trials that do not mix
# ---------------------------------------------------------------------------------------------

PARALLEL_TRAIN = """
[train]
data = "{data}"
size = 64
load_size = 72
ngf = 4
ndf = 4
batch_size = 2
log_every = 1
device = "cpu"
precision = "fp32"
"""


def _rows(run: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]


def _training_rows(run: Path) -> dict[int, dict]:
    """Every row of the step statistics (throughput left out: it is a clock, not a statistic)."""
    out: dict[int, dict] = {}
    for row in _rows(run):
        row = {k: v for k, v in row.items() if not k.startswith("perf/")}
        if len(row) > 1:
            out.setdefault(row["step"], {}).update(row)
    return out


def test_two_trials_in_parallel_keep_their_own_statistics_and_equal_the_same_trials_run_alone(tmp_path, image_dir, run_cli):
    """64 px: the generator has a dropout layer, which draws from the process's torch generator."""
    import json

    from ganlab.config import TrainConfig
    from ganlab.train import train

    steps = 6
    f = tmp_path / "par.toml"
    f.write_text("# Question: a test.\n[study]\nname = \"par\"\nobjectives = [\"val_l1\"]\nsampler = \"random\"\n"
                 f"seed = 3\nsteps = {steps}\neval_every = 3\n[search]\nlr = {{ low = 1e-4, high = 1e-3, log = true }}\n"
                 + PARALLEL_TRAIN.format(data=image_dir))
    code, _, err = run_cli("study", "--study", f, "--trials", "2", "--n-jobs", "2", "--out", tmp_path / "runs")
    assert code == 0, err
    assert "2 trial(s)" in err, err
    study = optuna.load_study(study_name="par", storage=f"sqlite:///{tmp_path / 'runs' / 'studies.db'}")
    trials = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(trials) == 2, [(t.number, t.state) for t in study.trials]
    pids = {t.user_attrs["worker"]["pid"] for t in trials}
    assert len(pids) == 2  # two processes trained them
    assert trials[0].params != trials[1].params  # each worker draws its own parameters
    for t in trials:
        run = Path(t.user_attrs["run_dir"])
        rows = _training_rows(run)
        g_l1 = [r["step"] for r in _rows(run) if "G/L1" in r]
        assert g_l1 == list(range(steps)), (t.number, g_l1)  # each step once, in its own run only
        assert all("D/loss_real" in rows[s] and "D/loss_fake" in rows[s] for s in range(steps)), t.number
        # the same trial alone, in this process, after the other, on as many CPU threads as its
        # worker had (float sums split over threads differently): the very same numbers
        cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text()), "config.json")
        threads = json.loads((run / "env.json").read_text())["cpu_threads"]
        alone = train(cfg.replace(out=str(tmp_path / "alone" / str(t.number)), threads=str(threads)), progress=False)
        assert _training_rows(alone.run_dir) == rows, t.number
        assert t.values == [alone.metrics["val/L1"]], t.number


def test_report_reaches_the_bus_of_the_run_in_its_own_thread():
    import threading

    from ganlab.stats import StatsBus, report

    buses = [StatsBus(), StatsBus()]
    barrier = threading.Barrier(2)

    def run(i: int) -> None:
        with buses[i].activate():
            for _ in range(50):
                barrier.wait()  # both threads report at the same moments
                report("x", float(i))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, bus in enumerate(buses):
        assert bus.pending() == {"x": [float(i)] * 50}
    report("x", 1.0)  # outside any run: nowhere, no error
