"""The Optuna dashboard: the line ganlab study prints starts the real optuna-dashboard, which
reads the study, its trials and the uploaded sample grids through its HTTP API while a worker
writes to the same SQLite file; every trial of the worker is recorded."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest

from test_study import study_file

from ganlab.study.storage import dashboard_command

needs_dashboard = pytest.mark.skipif(importlib.util.find_spec("optuna_dashboard") is None,
                                     reason="optuna-dashboard is not installed (pip install 'ganlab[dashboard]')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(base: str, path: str):
    with urllib.request.urlopen(base + path) as response:
        body = response.read()
        return json.loads(body) if response.headers.get_content_type() == "application/json" else body


def _dashboard_line(err: str, prefix: str) -> list[str]:
    lines = [line for line in err.splitlines() if line.startswith(prefix)]
    assert lines, err
    return shlex.split(lines[-1][len(prefix):].split("  (pip install")[0])


def test_the_dashboard_line_for_each_storage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert dashboard_command("sqlite:////data/my runs/studies.db", "/data/my runs/s/artifacts") == (
        "optuna-dashboard 'sqlite:////data/my runs/studies.db' --artifact-dir '/data/my runs/s/artifacts'")
    # a journal file by its path (as optuna-dashboard takes it), made absolute
    assert dashboard_command("journal://logs/study.log") == f"optuna-dashboard {tmp_path / 'logs' / 'study.log'}"
    assert dashboard_command("journal:///scratch/s.log") == "optuna-dashboard /scratch/s.log"
    # no password on the screen
    assert dashboard_command("postgresql://ganlab:secret@db/ganlab") == "optuna-dashboard postgresql://ganlab@db/ganlab"


@needs_dashboard
def test_the_dashboard_reads_a_study_while_a_worker_writes_to_it(tmp_path, image_dir, run_cli):
    f = study_file(tmp_path, image_dir, 'objectives = ["swd", "instability"]\npopulation_size = 2\n'
                   '[search]\nlr = { low = 1e-4, high = 1e-3, log = true }\n')
    runs = tmp_path / "runs"
    code, _, err = run_cli("study", "--study", f, "--trials", "1", "--out", runs)
    assert code == 0, err
    argv = _dashboard_line(err, "dashboard: ")
    assert argv[0] == "optuna-dashboard" and argv[1] == f"sqlite:///{(runs / 'studies.db').resolve()}"
    assert argv[2:] == ["--artifact-dir", str((runs / "tiny" / "artifacts").resolve())]
    assert _dashboard_line(err, "watch it live: ") == argv
    code, _, err = run_cli("report", "tiny", "--runs", runs)
    assert code == 0 and _dashboard_line(err, "dashboard: ") == argv, err

    exe = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent)) or shutil.which("optuna-dashboard")
    assert exe, "optuna-dashboard is importable but its command is not installed"
    base = f"http://127.0.0.1:{_free_port()}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    dashboard = subprocess.Popen([exe, *argv[1:], "--host", "127.0.0.1", "--port", base.rsplit(":", 1)[1], "--quiet"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    worker = None
    try:
        while True:  # until the server answers (or dies)
            assert dashboard.poll() is None, dashboard.stderr.read().decode()
            try:
                studies = _get(base, "/api/studies")["study_summaries"]
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        (study_id,) = [s["study_id"] for s in studies if s["study_name"] == "tiny"]
        worker = subprocess.Popen([sys.executable, "-m", "ganlab", "study", "--study", str(f), "--trials", "3", "--out", str(runs)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
        seen_while_running = []
        while worker.poll() is None:
            detail = _get(base, f"/api/studies/{study_id}")
            if worker.poll() is None:
                seen_while_running.append(len(detail["trials"]))
            time.sleep(0.3)
        _, worker_err = worker.communicate()
        assert worker.returncode == 0, worker_err.decode()
        assert seen_while_running and seen_while_running == sorted(seen_while_running)  # read during the writes
        # optuna-dashboard keeps the trials it read for 2 s (its cache of a study under 100
        # trials): what the worker wrote last is served once that has passed.
        deadline = time.monotonic() + 30
        while True:
            detail = _get(base, f"/api/studies/{study_id}")
            if len(detail["trials"]) == 4 and {t["state"] for t in detail["trials"]} == {"Complete"} or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert detail["name"] == "tiny" and len(detail["trials"]) == 4
        assert [t["state"] for t in detail["trials"]] == ["Complete"] * 4
        # the sample grid of a trial, through the dashboard's artifact route
        trial = detail["trials"][-1]
        (artifact,) = trial["artifacts"]
        png = _get(base, f"/artifacts/{study_id}/{trial['trial_id']}/{artifact['artifact_id']}")
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        for proc in (worker, dashboard):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait()
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{runs / 'studies.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert not [t for t in study.trials if "artifact_error" in t.user_attrs]
