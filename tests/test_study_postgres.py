"""Many workers on one PostgreSQL study: trials add up, a killed worker's trial is failed and retried.

Starts a real PostgreSQL server (the Debian package) on loopback in a temporary folder. Skipped
where the server binaries are absent (``apt-get install postgresql``; CI installs them).
"""

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import optuna
import pytest

from test_study import TINY_TRAIN


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory):
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("the PostgreSQL driver is missing (pip install 'psycopg[binary]')")
    root = tmp_path_factory.mktemp("pg")
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser")
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
        os.chmod(root, 0o755)
        for parent in list(root.parents)[:3]:
            os.chmod(parent, os.stat(parent).st_mode | 0o011)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "ganlab", "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                    f"-p {port} -k {sock} -h 127.0.0.1", "start"], check=True, capture_output=True)
    try:
        url = f"postgresql://ganlab@127.0.0.1:{port}/postgres"
        yield url
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)


def _study(tmp_path, data, name, steps=6, extra=""):
    path = tmp_path / f"{name}.toml"
    path.write_text(f"# Question: a test.\n[study]\nname = \"{name}\"\nobjectives = [\"val_l1\"]\nsampler = \"random\"\n"
                    f"steps = {steps}\neval_every = 3\n{extra}\n[search]\nlr = {{ low = 1e-4, high = 1e-3, log = true }}\n"
                    + TINY_TRAIN.format(data=data))
    return path


def _worker(study_file, url, out, trials):
    # One thread each: two workers on two cores must not oversubscribe them.
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "ganlab", "study", "--study", str(study_file), "--storage", url,
                             "--trials", str(trials), "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, start_new_session=True)


def test_two_workers_share_one_study(tmp_path, image_dir, postgres_url):
    f = _study(tmp_path, image_dir, "shared")
    workers = [_worker(f, postgres_url, tmp_path / f"out{i}", 2) for i in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err.decode()[-2000:]
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == [0, 1, 2, 3]  # added up: none lost, none duplicated
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert len({t.user_attrs["run_dir"] for t in study.trials}) == 4


def test_a_killed_worker_leaves_a_failed_trial_that_is_retried(tmp_path, image_dir, postgres_url):
    f = _study(tmp_path, image_dir, "killed", steps=400, extra="heartbeat_interval = 2\ngrace_period = 10\nmax_retry = 1\n")
    victim = _worker(f, postgres_url, tmp_path / "a", 1)
    deadline = time.time() + 300
    running = []
    while time.time() < deadline:
        try:
            study = optuna.load_study(study_name="killed", storage=postgres_url)
            running = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING and "run_dir" in t.user_attrs]
        except KeyError:
            running = []
        if running:
            break
        time.sleep(0.5)
    assert running, "the first worker never started a trial"
    time.sleep(2.0)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    time.sleep(12.0)  # past the grace period: the heartbeat is stale
    # A second worker (short trials) finds the stale trial, fails it and runs the retry.
    f2 = _study(tmp_path, image_dir, "killed", steps=400, extra="heartbeat_interval = 2\ngrace_period = 10\nmax_retry = 1\n")
    rescuer = _worker(f2, postgres_url, tmp_path / "b", 1)
    _, err = rescuer.communicate(timeout=900)
    assert rescuer.returncode == 0, err.decode()[-8000:]
    study = optuna.load_study(study_name="killed", storage=postgres_url)
    states = {t.number: t.state for t in study.trials}
    assert states[running[0].number] == optuna.trial.TrialState.FAIL
    assert optuna.trial.TrialState.RUNNING not in states.values()
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == running[0].number]
    assert len(retried) == 1 and retried[0].state == optuna.trial.TrialState.COMPLETE
    assert retried[0].params == running[0].params
