"""Faults: SIGKILL during training, during a checkpoint write and during a study trial; a full
disk; an unwritable runs folder; NaN from a diverging setting. After each, no corrupt checkpoint
is ever loaded, a resume continues from the last good step, and a study keeps every finished
trial. Kills go to subprocesses started in their own session (``os.killpg``)."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch

from conftest import TINY, assert_same_networks, nan_loss_trick, only_run, write_images
from ganlab.trick import Trick, register
from ganlab.stats import read_series
from ganlab.train import checkpoint_files, latest_checkpoint, read_checkpoint

ENV = dict(os.environ, PYTHONWARNINGS="ignore")


def _spawn(args, log: Path, script: str | None = None) -> subprocess.Popen:
    head = [sys.executable, "-c", script] if script else [sys.executable, "-m", "ganlab"]
    fh = open(log, "w")
    return subprocess.Popen([*head, *map(str, args)], stdout=fh, stderr=subprocess.STDOUT, env=ENV, start_new_session=True)


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _wait_for(condition, proc: subprocess.Popen, log: Path, what: str, limit: float = 600.0):
    """Poll until ``condition()`` is true; fail (with the child's output) if the child ends first."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"the process ended before {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    _kill(proc)
    raise AssertionError(f"never saw {what}:\n{log.read_text()[-3000:]}")


def _one_error_line(err: str, *needles: str) -> str:
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("ganlab: error:")]
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _all_checkpoints_load(run: Path) -> list[int]:
    steps = []
    for path in checkpoint_files(run):
        steps.append(read_checkpoint(path, for_resume=True)["step"])  # raises on anything corrupt or non-finite
    assert not list((run / "checkpoints").glob(".*.tmp")), "a half-written temporary file was left behind"
    return sorted(steps)


# ---------------------------------------------------------------------------------------------
# SIGKILL
# ---------------------------------------------------------------------------------------------


def test_sigkill_during_training_then_resume_gives_the_uninterrupted_result(tmp_path, image_dir, run_cli):
    common = ["--data", image_dir, *TINY, "--log-every", "1", "--eval-every", "1000", "--save-every", "2"]
    proc = _spawn(["train", *common, "--steps", "1000", "--out", tmp_path / "a"], tmp_path / "a.log")
    ckpts = lambda: (tmp_path / "a").is_dir() and any((tmp_path / "a").iterdir()) and len(checkpoint_files(only_run(tmp_path / "a"))) >= 2  # noqa: E731
    _wait_for(ckpts, proc, tmp_path / "a.log", "two checkpoints")
    _kill(proc)
    run = only_run(tmp_path / "a")
    assert json.loads((run / "status.json").read_text())["status"] == "running"  # it had no chance to say more
    # every checkpoint under its final name loads (a kill mid-write leaves only a temporary file)
    good = max(read_checkpoint(p, for_resume=True)["step"] for p in checkpoint_files(run))
    target = good + 3
    code, _, err = run_cli("train", "--resume", run, "--steps", target, "--no-progress")
    assert code == 0, err
    assert f"from step {good}" in err and "warning" not in err
    # the same weights as a run that was never interrupted
    code, _, err = run_cli("train", *common, "--steps", target, "--out", tmp_path / "b")
    assert code == 0, err
    a = torch.load(run / "checkpoints" / f"step-{target:07d}.pt", weights_only=True)
    b = torch.load(only_run(tmp_path / "b") / "checkpoints" / f"step-{target:07d}.pt", weights_only=True)
    assert_same_networks(a, b)
    # the log continues without a gap or a duplicated step (a torn last line is passed over)
    assert [s for s, _ in read_series(run / "stats.jsonl")["G/L1"]] == list(range(target))
    raw = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in raw if "G/L1" in r] == list(range(target))  # in the file itself, each step once
    assert json.loads((run / "status.json").read_text())["status"] == "finished"


STALL_SECOND_SAVE = r"""
import io, sys, time, torch
marker, argv = sys.argv[1], sys.argv[2:]
real_save, calls = torch.save, []

def stalling_save(obj, f, *args, **kwargs):
    calls.append(1)
    if len(calls) < 2:
        return real_save(obj, f, *args, **kwargs)
    buf = io.BytesIO()
    real_save(obj, buf, *args, **kwargs)
    data = buf.getvalue()
    f.write(data[: len(data) // 2])  # half of the checkpoint is on its way to the disk...
    f.flush()
    open(marker, "w").close()
    time.sleep(3600)                 # ...when the process is killed

torch.save = stalling_save
from ganlab.cli import main
sys.exit(main(argv))
"""


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_one_to_resume_from(tmp_path, image_dir, run_cli):
    marker = tmp_path / "writing"
    args = [marker, "train", "--data", image_dir, *TINY, "--steps", "8", "--save-every", "2", "--log-every", "1",
            "--eval-every", "1000", "--out", tmp_path / "runs"]
    proc = _spawn(args, tmp_path / "log", script=STALL_SECOND_SAVE)
    _wait_for(marker.exists, proc, tmp_path / "log", "the second checkpoint being written")
    _kill(proc)
    run = only_run(tmp_path / "runs")
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "step-0000002.pt" in names and "step-0000004.pt" not in names, names
    assert any(n.startswith(".step-0000004.pt.") and n.endswith(".tmp") for n in names), names  # the torn write
    warnings: list[str] = []
    path, payload = latest_checkpoint(run, warnings.append, for_resume=True)
    assert path.name == "step-0000002.pt" and payload["step"] == 2 and warnings == []
    code, _, err = run_cli("train", "--resume", run, "--no-progress")
    assert code == 0, err
    assert "from step 2" in err
    assert _all_checkpoints_load(run) == [4, 6, 8]  # and the torn temporary file is cleaned away


def _study_file(tmp_path: Path, data: Path, name: str, steps: int, extra: str = "") -> Path:
    from test_study import TINY_TRAIN

    path = tmp_path / f"{name}.toml"
    path.write_text(f"# Question: a test.\n[study]\nname = \"{name}\"\nobjectives = [\"val_l1\"]\nsampler = \"random\"\n"
                    f"steps = {steps}\neval_every = {steps}\n{extra}\n[search]\nlr = {{ low = 1e-4, high = 1e-3, log = true }}\n"
                    + TINY_TRAIN.format(data=data))
    return path


def test_sigkill_during_a_study_trial_keeps_every_finished_trial_and_retries_the_killed_one(tmp_path, image_dir, run_cli):
    f = _study_file(tmp_path, image_dir, "killed", steps=20)
    url = f"sqlite:///{tmp_path / 'runs' / 'studies.db'}"
    proc = _spawn(["study", "--study", f, "--trials", "50", "--out", tmp_path / "runs"], tmp_path / "log")

    def second_trial_running():
        try:
            study = optuna.load_study(study_name="killed", storage=url)
        except Exception:  # noqa: BLE001 - not created yet
            return None
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        running = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING and "worker" in t.user_attrs]
        return (done, running[0]) if done and running else None

    _wait_for(second_trial_running, proc, tmp_path / "log", "a finished trial and a running one")
    _kill(proc)
    running = [t for t in optuna.load_study(study_name="killed", storage=url).trials
               if t.state == optuna.trial.TrialState.RUNNING]
    assert len(running) == 1  # killed in the middle of its trial
    victim = running[0]
    before = {t.number: (t.values, t.params) for t in optuna.load_study(study_name="killed", storage=url).trials
              if t.state == optuna.trial.TrialState.COMPLETE}
    assert before
    # the next worker on this storage finds the dead worker's trial, fails it and runs it again
    code, _, err = run_cli("study", "--study", f, "--trials", "1", "--out", tmp_path / "runs")
    assert code == 0, err
    assert f"trial(s) {victim.number}: their worker died" in err
    study = optuna.load_study(study_name="killed", storage=url)
    by_number = {t.number: t for t in study.trials}
    for number, (values, params) in before.items():  # every finished trial is kept, unchanged
        assert by_number[number].state == optuna.trial.TrialState.COMPLETE
        assert by_number[number].values == values and by_number[number].params == params
    assert by_number[victim.number].state == optuna.trial.TrialState.FAIL
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.COMPLETE
    assert victim.params.items() <= retries[0].params.items()  # the parameters it had drawn (if any) are kept
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]


# ---------------------------------------------------------------------------------------------
# A full disk, a folder that cannot be written
# ---------------------------------------------------------------------------------------------


def _no_space():
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _fail_checkpoint(monkeypatch):
    """The third step checkpoint's write runs out of space half way through (best.pt, written
    after evaluations, is not counted)."""
    real, calls = torch.save, []

    def save(obj, f, *a, **k):
        if isinstance(obj, dict) and obj.get("kind") == "weights":
            return real(obj, f, *a, **k)
        calls.append(1)
        if len(calls) < 3:
            return real(obj, f, *a, **k)
        buf = io.BytesIO()
        real(obj, buf, *a, **k)
        f.write(buf.getvalue()[:1000])
        raise _no_space()

    monkeypatch.setattr(torch, "save", save)


def _fail_jsonl(monkeypatch):
    import ganlab.stats as stats

    real, calls = stats.JsonlSink.flush, []

    def flush(self):
        calls.append(1)
        if len(calls) >= 5:
            raise _no_space()
        return real(self)

    monkeypatch.setattr(stats.JsonlSink, "flush", flush)


def _fail_tensorboard(monkeypatch):
    import ganlab.stats as stats

    real, calls = stats.TensorBoardSink.__call__, []

    def call(self, step, row):
        calls.append(1)
        if len(calls) >= 6:
            raise _no_space()
        return real(self, step, row)

    monkeypatch.setattr(stats.TensorBoardSink, "__call__", call)


def _fail_samples(monkeypatch):
    import ganlab.train.inloop as inloop

    real, calls = inloop.save_png, []

    def save_png(path, image):
        calls.append(1)
        if len(calls) >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, image)

    monkeypatch.setattr(inloop, "save_png", save_png)


@pytest.mark.parametrize("fault", [_fail_checkpoint, _fail_jsonl, _fail_tensorboard, _fail_samples],
                         ids=["checkpoint", "stats.jsonl", "tensorboard", "sample-grid"])
def test_a_full_disk_while_writing_is_one_line_and_the_checkpoints_stay_whole(tmp_path, image_dir, run_cli, monkeypatch, fault):
    fault(monkeypatch)
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--steps", "8", "--save-every", "2", "--log-every", "1",
                           "--eval-every", "2", "--out", tmp_path / "runs")
    assert code == 1, err
    line = _one_error_line(err, "No space left on device", "--resume")
    run = only_run(tmp_path / "runs")
    steps = _all_checkpoints_load(run)
    assert steps, "at least the first checkpoint was written before the disk filled"
    assert f"step-{steps[-1]:07d}.pt is intact" in line
    if fault is _fail_checkpoint:
        assert "step-0000006.pt" in line and steps == [2, 4]
    assert json.loads((run / "status.json").read_text())["status"] == "stopped"
    monkeypatch.undo()  # room again
    code, _, err = run_cli("train", "--resume", run, "--no-progress")
    assert code == 0, err
    assert f"from step {steps[-1]}" in err
    assert _all_checkpoints_load(run)[-1] == 8


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True).returncode == 0


@contextlib.contextmanager
def _tmpfs(where: Path, options: str, otherwise: str):
    """A tmpfs mounted at ``where`` for the test (skipped with ``otherwise`` where it cannot be)."""
    if not _mount_tmpfs(where, options):
        pytest.skip(f"mounting a tmpfs needs root ({otherwise})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    with _tmpfs(tmp_path / "disk", "size=3m", "the monkeypatched writers above cover the same paths") as disk:
        yield disk


def test_a_real_full_disk_tmpfs(tmp_path, image_dir, run_cli, small_disk):
    # A checkpoint of these networks is about 1 MB: the third one does not fit in 3 MB.
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--steps", "20", "--save-every", "1", "--log-every", "1",
                           "--eval-every", "1000", "--out", small_disk / "runs")
    assert code == 1, err
    _one_error_line(err, "No space left on device", "is intact", "--resume")
    run = only_run(small_disk / "runs")
    steps = _all_checkpoints_load(run)
    assert steps and steps[-1] < 20
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    code, _, err = run_cli("train", "--resume", run, "--no-progress")
    assert code == 0, err
    assert f"from step {steps[-1]}" in err
    assert _all_checkpoints_load(run)[-1] == 20


@pytest.fixture
def read_only_dir(tmp_path):
    with _tmpfs(tmp_path / "ro", "size=8m", "tests/test_cli_errors.py covers chmod for other users") as ro:
        yield ro


def test_an_unwritable_runs_folder_is_one_line_before_any_work(tmp_path, image_dir, run_cli, read_only_dir):
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--steps", "2", "--out", read_only_dir / "runs")
    assert code == 0, err
    run = only_run(read_only_dir / "runs")
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_dir)], check=True)
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--steps", "2", "--out", read_only_dir / "runs")
    assert code == 2
    _one_error_line(err, "--out", "cannot write", "Read-only file system")
    code, _, err = run_cli("train", "--resume", run, "--steps", "4", "--no-progress")
    assert code == 2
    _one_error_line(err, "--resume", "cannot write", "Read-only file system")
    assert _all_checkpoints_load(run) == [2]  # nothing was touched


def test_torch_running_out_of_memory_is_one_line(tmp_path, image_dir, run_cli, monkeypatch):
    import ganlab.train.loop as loop

    def build_model(*a, **k):  # what torch's CPU allocator raises for --ngf 100000
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 1280000000000 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(loop, "build_session", build_model)
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--steps", "1", "--out", tmp_path / "runs")
    assert code == 1
    _one_error_line(err, "out of memory", "--batch-size")
    with pytest.raises(RuntimeError, match="can't allocate memory"):
        run_cli("--debug", "train", "--data", image_dir, *TINY, "--steps", "1", "--out", tmp_path / "runs")


def test_checkpoint_files_follow_the_umask(tmp_path, image_dir, run_cli):
    old = os.umask(0o022)
    try:
        code, _, err = run_cli("train", "--data", image_dir, *TINY, "--steps", "1", "--out", tmp_path / "runs")
    finally:
        os.umask(old)
    assert code == 0, err
    run = only_run(tmp_path / "runs")
    for path in [*checkpoint_files(run), run / "config.json", run / "status.json"]:
        assert path.stat().st_mode & 0o777 == 0o644, path  # readable by a TensorBoard run as another user


# ---------------------------------------------------------------------------------------------
# NaN, and checkpoints that must not be loaded
# ---------------------------------------------------------------------------------------------


def test_learning_rate_10_diverges_with_one_line_and_writes_no_poisoned_checkpoint(tmp_path, image_dir, run_cli):
    # --log-every 10 checks the logged values only every 10 steps; checkpoints come every step.
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--lr", "10", "--gan-mode", "lsgan", "--norm", "none",
                           "--beta1", "0.9", "--steps", "20", "--save-every", "1", "--log-every", "10", "--out", tmp_path / "runs")
    assert code == 1, err
    line = _one_error_line(err, "training diverged at step", "lower --lr")
    bad_step = int(line.split("at step ")[1].split(":")[0])
    run = only_run(tmp_path / "runs")
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "diverged" and status["diverged_step"] == bad_step
    assert status["step"] == max(checkpoint_files(run) and [read_checkpoint(p)["step"] for p in checkpoint_files(run)] or [0])
    # nothing was saved from the diverged state: every checkpoint predates the first non-finite value
    assert all(read_checkpoint(p, for_resume=True)["step"] <= bad_step for p in checkpoint_files(run))


NanFromStep5 = nan_loss_trick("test-nan-from-5", 5)


def test_a_run_that_diverges_between_log_flushes_resumes_from_the_last_finite_checkpoint(tmp_path, image_dir, run_cli):
    register(NanFromStep5)
    args = ["--data", image_dir, *TINY, "--trick", "test-nan-from-5", "--steps", "12", "--save-every", "2",
            "--log-every", "10", "--eval-every", "1000", "--out", tmp_path / "runs"]
    code, _, err = run_cli("train", *args)
    assert code == 1, err
    _one_error_line(err, "training diverged at step 5", "= nan")
    run = only_run(tmp_path / "runs")
    assert _all_checkpoints_load(run) == [2, 4]
    code, _, err = run_cli("train", "--resume", run, "--no-progress")
    assert "from step 4" in err  # the last good step (and the same poison stops it again)
    _one_error_line(err, "training diverged at step 5")


class PoisonWeightsAtStep3(Trick):
    """Turns a generator weight to NaN right after the update of step 3 (the losses logged so far
    are all finite: only the weights tell)."""

    name = "test-poison-weights"

    def after_g_update(self, ctx):
        if ctx.step == 3:
            with torch.no_grad():
                next(ctx.G.parameters()).view(-1)[0] = float("nan")


def test_a_checkpoint_is_never_written_with_non_finite_weights(tmp_path, image_dir, run_cli):
    register(PoisonWeightsAtStep3)
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--trick", "test-poison-weights", "--steps", "8",
                           "--save-every", "2", "--log-every", "1", "--eval-every", "1000", "--out", tmp_path / "runs")
    assert code == 1, err
    _one_error_line(err, "training diverged at step 4", "weight G.")
    run = only_run(tmp_path / "runs")
    assert _all_checkpoints_load(run) == [2]
    assert json.loads((run / "status.json").read_text())["status"] == "diverged"


def _corrupt(kind: str, path: Path) -> None:
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "zero-bytes":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(os.urandom(4096))
    elif kind == "nan-weights":
        payload = torch.load(path, weights_only=True)
        first = next(k for k, v in payload["G"].items() if v.is_floating_point())
        payload["G"][first] = payload["G"][first] * float("nan")
        torch.save(payload, path)
    elif kind == "no-optimiser-state":
        payload = torch.load(path, weights_only=True)
        del payload["opt_g"]
        torch.save(payload, path)
    elif kind == "someone-elses-file":
        torch.save({"weights": torch.zeros(3)}, path)


KINDS = ["truncated", "zero-bytes", "garbage", "nan-weights", "no-optimiser-state", "someone-elses-file"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_newest_checkpoint_is_passed_over_with_a_warning(tmp_path, finished_run, kind):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    _corrupt(kind, run / "checkpoints" / "step-0000004.pt")
    warnings: list[str] = []
    path, payload = latest_checkpoint(run, warnings.append, for_resume=True)
    assert path.name == "step-0000002.pt" and payload["step"] == 2
    assert len(warnings) == 1 and "step-0000004.pt" in warnings[0] and "falling back" in warnings[0]


def test_resume_past_a_damaged_checkpoint_continues_from_the_previous_step(tmp_path, finished_run, run_cli):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    _corrupt("nan-weights", run / "checkpoints" / "step-0000004.pt")
    code, _, err = run_cli("train", "--resume", run, "--steps", "6", "--no-progress")
    assert code == 0, err
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "step-0000004.pt holds NaN or Inf weights" in warning[0]
    assert "from step 2" in err
    assert _all_checkpoints_load(run)[-1] == 6


# ---------------------------------------------------------------------------------------------
# SIGINT and SIGTERM save; one writer per run folder; status.json says one thing
# ---------------------------------------------------------------------------------------------


def _default_signals() -> None:
    """In the child: a background job of a shell starts with SIGINT ignored; a user's Ctrl-C does not."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _spawn_train(args, log: Path) -> subprocess.Popen:
    fh = open(log, "w")
    return subprocess.Popen([sys.executable, "-m", "ganlab", *map(str, args)], stdout=fh, stderr=subprocess.STDOUT,
                            env=ENV, start_new_session=True, preexec_fn=_default_signals)


def _trained_steps(out: Path) -> int:
    if not out.is_dir() or not any(out.iterdir()):
        return 0
    stats = only_run(out) / "stats.jsonl"
    if not stats.exists():
        return 0
    return sum(1 for line in stats.read_text().splitlines() if '"G/L1"' in line)


def _status(run: Path) -> dict:
    return json.loads((run / "status.json").read_text())


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_finishes_the_step_saves_it_and_names_the_resume_command(tmp_path, image_dir, run_cli, sig, code):
    out = tmp_path / "runs"
    common = ["--data", image_dir, *TINY, "--log-every", "1", "--eval-every", "1000", "--save-every", "1000"]
    proc = _spawn_train(["train", *common, "--steps", "1000", "--out", out], tmp_path / "log")
    _wait_for(lambda: _trained_steps(out) >= 3, proc, tmp_path / "log", "three steps")
    os.kill(proc.pid, sig)
    assert proc.wait(timeout=120) == code, (tmp_path / "log").read_text()[-3000:]
    run = only_run(out)
    log = (tmp_path / "log").read_text()
    assert f"continue with: ganlab train --resume {run}" in log, log[-2000:]
    assert "Traceback" not in log and "RUN_DIR" not in log
    status = _status(run)
    step = status["step"]
    # the step in progress was finished and saved: nothing is lost; status.json names that checkpoint
    assert status["status"] == "stopped" and status["trained_step"] == step >= 3, status
    assert _all_checkpoints_load(run) == [step]
    assert [s for s, _ in read_series(run / "stats.jsonl")["G/L1"]] == list(range(step))
    # and the run goes on from there, to the result of a run never stopped
    code2, _, err = run_cli("train", "--resume", run, "--steps", step + 2, "--no-progress")
    assert code2 == 0 and f"from step {step}" in err, err
    code2, _, err = run_cli("train", *common, "--steps", step + 2, "--out", tmp_path / "straight")
    assert code2 == 0, err
    a = torch.load(run / "checkpoints" / f"step-{step + 2:07d}.pt", weights_only=True)
    b = torch.load(only_run(tmp_path / "straight") / "checkpoints" / f"step-{step + 2:07d}.pt", weights_only=True)
    assert_same_networks(a, b)
    status = _status(run)
    assert status.pop("best")["step"] == step + 2  # the run's only evaluation, at its end
    assert status == {"status": "finished", "step": step + 2, "trained_step": step + 2, "total": step + 2}


def test_a_second_signal_stops_at_once_and_the_previous_checkpoint_stays(tmp_path, image_dir):
    out = tmp_path / "runs"
    proc = _spawn_train(["train", "--data", image_dir, *TINY, "--log-every", "1", "--eval-every", "1000",
                         "--save-every", "2", "--steps", "1000", "--out", out], tmp_path / "log")
    _wait_for(lambda: _trained_steps(out) >= 5, proc, tmp_path / "log", "five steps")
    os.kill(proc.pid, signal.SIGTERM)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=120) == 143, (tmp_path / "log").read_text()[-3000:]
    run = only_run(out)
    steps = _all_checkpoints_load(run)  # whatever the second signal interrupted, every checkpoint is whole
    status = _status(run)
    assert status["status"] == "stopped" and status["step"] == steps[-1], (status, steps)
    assert status["trained_step"] >= status["step"]
    assert f"ganlab train --resume {run}" in (tmp_path / "log").read_text()


def test_sigterm_to_a_study_worker_saves_its_trial_and_the_next_worker_continues_it(tmp_path, image_dir, run_cli):
    f = _study_file(tmp_path, image_dir, "termed", steps=400)
    url = f"sqlite:///{tmp_path / 'runs' / 'studies.db'}"
    proc = _spawn_train(["study", "--study", f, "--trials", "5", "--out", tmp_path / "runs"], tmp_path / "log")

    def trial_running():
        folders = list((tmp_path / "runs" / "termed").glob("*-termed-t0000"))
        stats = folders[0] / "stats.jsonl" if folders else None
        return folders[0] if stats and stats.exists() and stats.read_text().count('"G/L1"') >= 3 else None

    run = _wait_for(trial_running, proc, tmp_path / "log", "a trial training")
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=120) == 143, (tmp_path / "log").read_text()[-3000:]
    study = optuna.load_study(study_name="termed", storage=url)
    first = study.trials[0]
    assert first.state == optuna.trial.TrialState.FAIL
    stopped = _status(run)
    assert stopped["status"] == "stopped" and first.user_attrs["stopped_step"] == stopped["step"] >= 3
    waiting = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].system_attrs["failed_trial"] == 0  # queued at once, no heartbeat needed
    code, _, err = run_cli("study", "--study", f, "--trials", "1", "--out", tmp_path / "runs")
    assert code == 0, err
    retry = [t for t in optuna.load_study(study_name="termed", storage=url).trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retry) == 1 and retry[0].state == optuna.trial.TrialState.COMPLETE
    assert Path(retry[0].user_attrs["run_dir"]) == run  # the same folder, continued from its checkpoint
    assert [s for s, _ in read_series(run / "stats.jsonl")["G/L1"]] == list(range(400))
    assert _status(run)["status"] == "finished"


LOCK_HOLDER = r"""
import sys, time
from pathlib import Path
from ganlab.train.guard import RunLock
lock = RunLock(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(3600)
"""


def test_one_writer_per_run_folder_and_a_dead_holder_blocks_nothing(tmp_path, image_dir, run_cli):
    common = ["--data", image_dir, *TINY, "--log-every", "1", "--eval-every", "1000", "--save-every", "2"]
    code, _, err = run_cli("train", *common, "--steps", "2", "--out", tmp_path / "runs")
    assert code == 0, err
    run = only_run(tmp_path / "runs")
    # another process trains this folder (a second terminal, a re-submitted job)
    proc = _spawn_train(["train", "--resume", run, "--steps", "100000", "--no-progress"], tmp_path / "log")
    _wait_for(lambda: (run / ".lock").exists() and str(proc.pid) in (run / ".lock").read_text(), proc,
              tmp_path / "log", "the lock taken", limit=120)
    before = (run / "stats.jsonl").read_text()
    code, _, err = run_cli("train", "--resume", run, "--steps", "100000", "--no-progress")
    import socket

    line = _one_error_line(err, "being trained by", f"pid {proc.pid}", socket.gethostname())
    assert code == 2, line
    _kill(proc)  # SIGKILL: the OS drops the lock with the process
    assert (run / "stats.jsonl").read_text().startswith(before[: len(before) // 2])
    code, _, err = run_cli("train", "--resume", run, "--steps", "6", "--no-progress")
    assert code == 0, err
    assert _status(run)["status"] == "finished"


def test_status_json_names_the_newest_checkpoint_after_a_divergence(tmp_path, image_dir, run_cli):
    register(NanFromStep5)
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--trick", "test-nan-from-5", "--steps", "20",
                           "--save-every", "2", "--log-every", "1", "--eval-every", "1000", "--out", tmp_path / "runs")
    assert code == 1, err
    run = only_run(tmp_path / "runs")
    status = _status(run)
    assert status["status"] == "diverged" and status["diverged_step"] == 5
    assert status["step"] == max(_all_checkpoints_load(run)) == 4 and status["trained_step"] == 5
