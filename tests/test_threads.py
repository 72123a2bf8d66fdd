"""The thread budget (--threads, a worker's share of the cores) and --n-jobs auto."""

import json

import pytest
import torch

from conftest import TINY, only_run
from ganlab import threads as T
from ganlab.config import TrainConfig
from ganlab.errors import UsageError
from ganlab.study.workers import Plan, plan_workers, worker_bytes


@pytest.fixture
def four_cores(monkeypatch):
    """A process that may use 4 cores, with no OMP_NUM_THREADS of the user's."""
    monkeypatch.setattr(T, "usable_cores", lambda: 4)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(T.WHY_ENV, raising=False)
    with T.kept():
        yield


def test_each_worker_of_two_gets_half_the_cores(four_cores):
    cfg = TrainConfig(device="cpu", steps=1).validate()
    plan = plan_workers(2, None, cfg)
    # this process is worker 0: its torch pool is its share, and every run it trains keeps it
    assert torch.get_num_threads() == 2 and plan.budget.threads == 2
    assert T.budget_for_run("auto").threads == 2
    assert "4 cores / 2 workers" in plan.budget.why
    # worker 1 is told its share on its command line, and why, in its environment
    assert plan.argv(1) == ["--threads", "2"]


def test_a_worker_started_with_its_share_keeps_it_and_says_why(four_cores, monkeypatch):
    monkeypatch.setenv(T.WHY_ENV, "4 cores / 2 workers")
    cfg = TrainConfig(device="cpu", steps=1).validate()
    plan = plan_workers(1, 2, cfg)  # what `ganlab study ... --n-jobs 1 --threads 2` does
    assert torch.get_num_threads() == 2 and plan.budget.why == "4 cores / 2 workers"


def test_threads_and_omp_num_threads_win_over_the_share(four_cores, monkeypatch):
    cfg = TrainConfig(device="cpu", steps=1).validate()
    assert plan_workers(2, 3, cfg, apply=False).budget == T.Budget(3, "--threads")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    plan = plan_workers(2, None, cfg, apply=False)
    assert plan.budget == T.Budget(1, "OMP_NUM_THREADS") and plan.argv(1) == []  # the worker inherits it
    assert T.budget_for_run("auto") == T.Budget(1, "OMP_NUM_THREADS")
    assert T.budget_for_run("3") == T.Budget(3, "--threads")


def test_a_lone_run_takes_every_core(four_cores):
    assert T.budget_for_run("auto").threads == 4
    assert T.worker_budget(1).threads == 4 and T.worker_budget(3).threads == 1 and T.worker_budget(8).threads == 1


def test_the_thread_count_is_put_back_after_a_command(four_cores):
    before = torch.get_num_threads()
    with T.kept():
        T.apply_budget(T.Budget(3, "test"), process=True)
        assert torch.get_num_threads() == 3 and T.process_budget().threads == 3
    assert torch.get_num_threads() == before and T.process_budget() is None


def test_n_jobs_auto_rule():
    gib = 2**30
    rule = T.jobs_rule
    # CPU: one single-threaded worker per core
    assert rule(cuda_devices=0, cores=8, runs=None, worker_bytes=None, free_bytes=None)[0] == 8
    assert rule(cuda_devices=0, cores=2, runs=30, worker_bytes=gib, free_bytes=20 * gib)[0] == 2
    # never more workers than runs to go
    n, why = rule(cuda_devices=0, cores=8, runs=3, worker_bytes=None, free_bytes=None)
    assert n == 3 and "3 runs to go" in why
    assert rule(cuda_devices=0, cores=8, runs=0, worker_bytes=None, free_bytes=None)[0] == 1
    # never more than fit in 80% of the memory available
    n, why = rule(cuda_devices=0, cores=16, runs=None, worker_bytes=4 * gib, free_bytes=10 * gib)
    assert n == 2 and "memory" in why
    assert rule(cuda_devices=0, cores=16, runs=None, worker_bytes=40 * gib, free_bytes=10 * gib)[0] == 1
    # threads fixed per worker (--threads, OMP_NUM_THREADS): the cores filled with such workers
    assert rule(cuda_devices=0, cores=8, runs=None, worker_bytes=None, free_bytes=None, threads=2)[0] == 4
    assert rule(cuda_devices=0, cores=2, runs=None, worker_bytes=None, free_bytes=None, threads=4)[0] == 1
    # CUDA: one worker per GPU, whatever the cores and host memory
    assert rule(cuda_devices=2, cores=64, runs=None, worker_bytes=4 * gib, free_bytes=gib)[0] == 2
    assert rule(cuda_devices=4, cores=64, runs=1, worker_bytes=None, free_bytes=None)[0] == 1


def test_n_jobs_auto_on_this_cpu_and_each_worker_gets_its_share(four_cores, image_dir):
    cfg = TrainConfig(data=str(image_dir), device="cpu", size=32, ngf=4, ndf=4, steps=1).validate()
    plan = plan_workers("auto", None, cfg, runs=30, apply=False)
    assert plan.n_jobs == 4 and plan.budget.threads == 1 and plan.why.startswith("--n-jobs auto")
    assert plan_workers("auto", None, cfg, runs=2, apply=False).budget.threads == 2  # 2 runs: 2 workers x 2 threads
    assert worker_bytes(cfg) > T.PER_PROCESS_BYTES


def test_workers_take_one_gpu_each(monkeypatch):
    from ganlab.study import workers as W

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert W._spread_over_gpus("auto", 3) == ("cuda:0", "cuda:1", "cuda:0")
    assert W._spread_over_gpus("cuda:1", 2) == (None, None)  # a GPU named by the user is kept
    assert W._spread_over_gpus("cpu", 2) == (None, None)
    plan = Plan(2, T.Budget(8, "16 cores / 2 workers"), ("cuda:0", "cuda:1"))
    assert plan.argv(1) == ["--threads", "8", "--device", "cuda:1"]


@pytest.mark.parametrize("value", ["0", "-1", "-8", "1.5", "two"])
def test_bad_thread_counts_are_refused_in_one_line(value, run_cli, tmp_path):
    for command in (["train", "--steps", "1", "--out", str(tmp_path)], ["study", "--out", str(tmp_path)],
                    ["confirm", "x", "--runs", str(tmp_path)]):
        code, out, err = run_cli(*command, f"--threads={value}")
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and f"--threads {value}" in lines[0] and ">= 1" in lines[0], (command, err)
        assert "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing was written


@pytest.mark.parametrize("value", ["0", "-2", "x"])
def test_bad_n_jobs_are_refused_in_one_line(value, run_cli, tmp_path):
    for command in (["study", "--out", str(tmp_path)], ["confirm", "x", "--runs", str(tmp_path)]):
        code, _, err = run_cli(*command, f"--n-jobs={value}")
        assert code == 2 and len(err.strip().splitlines()) == 1 and f"--n-jobs {value}" in err, (command, err)


def test_threads_in_a_config_file_and_on_resume(tmp_path):
    from ganlab.cli.flags import resumable_settings
    from ganlab.config import load_toml, resolve

    good = tmp_path / "good.toml"
    good.write_text("threads = 2\n")
    load_toml(good)
    assert resolve({}, str(good)).threads == "2"
    bad = tmp_path / "bad.toml"
    bad.write_text("threads = 0\n")
    with pytest.raises(UsageError, match="--threads 0"):
        resolve({}, str(bad))
    assert "threads" in resumable_settings()


def test_env_json_holds_the_threads_the_run_used(image_dir, run_cli, tmp_path):
    threads = torch.get_num_threads()
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--steps", "1", "--eval-every", "1000", "--threads", "1",
                           "--out", tmp_path / "runs")
    assert code == 0, err
    env = json.loads((only_run(tmp_path / "runs") / "env.json").read_text())
    assert env["cpu_threads"] == 1 and env["threads_why"] == "--threads" and env["interop_threads"] >= 1
    assert torch.get_num_threads() == threads  # the caller's threads, back again


def test_study_workers_train_with_their_share_and_record_it(tmp_path, image_dir, run_cli, monkeypatch):
    """Both trials of `ganlab study --n-jobs 2`, one in this process and one in a worker process,
    train with cores // 2 threads (at least 1), and their env.json says so."""
    import optuna

    from test_study import study_file

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(T.WHY_ENV, raising=False)
    f = study_file(tmp_path, image_dir, 'objectives = ["val_l1"]\nsampler = "random"\n')
    code, _, err = run_cli("study", "--study", f, "--trials", "2", "--n-jobs", "2", "--out", tmp_path / "runs")
    assert code == 0, err
    cores = T.usable_cores()
    assert f"2 worker processes, {max(1, cores // 2)} thread" in err
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'runs' / 'studies.db'}")
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 2 and len({t.user_attrs["worker"]["pid"] for t in trials}) == 2
    for t in trials:
        env = json.loads((tmp_path / "runs" / "tiny" / t.user_attrs["run_dir"].split("/")[-1] / "env.json").read_text())
        assert env["cpu_threads"] == max(1, cores // 2), env
        assert env["threads_why"] == f"{cores} cores / 2 workers", env
