"""Bad configuration: unknown flags, tricks and trick parameters, values out of range, malformed
--config and study files, storages that cannot be reached. Each is one line that names the flag
or key, the value and what is allowed; exit code 2; no traceback (``--debug`` shows it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ganlab.errors import UsageError


def _one_line(code, err, *needles):
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "args,needles",
    [
        (["--no-such-flag"], ["ganlab train: error: unrecognized arguments: --no-such-flag; see ganlab train --help"]),
        (["--size", "big"], ["--size", "'big'", "invalid int"]),
        (["--size", "17"], ["--size 17", "multiple of 32"]),
        (["--lr", "-0.001"], ["--lr -0.001", "positive number"]),
        (["--lr", "0"], ["--lr 0", "positive number"]),
        (["--lr", "nan"], ["--lr nan", "positive number"]),
        (["--lambda-l1", "-1"], ["--lambda-l1 -1", ">= 0"]),
        (["--beta1", "1.5"], ["--beta1 1.5", "[0, 1)"]),
        (["--val-split", "1.5"], ["--val-split 1.5", "between 0 and 1"]),
        (["--seed", "-1"], ["--seed -1", "[0, 4294967295]"]),
        (["--seed", "99999999999999999999"], ["--seed 99999999999999999999", "[0, 4294967295]"]),
        (["--device", "cuda:x"], ["--device cuda:x", "cuda:N"]),
        (["--trick", "no-such-trick"], ["--trick no-such-trick", "unknown trick", "label-flip"]),
        (["--trick", "label-flip:q=1"], ["--trick label-flip", "unknown parameter 'q'", "allowed: p"]),
        (["--trick", "label-flip:p=1.5"], ["--trick label-flip:p=1.5", "out of range", "[0, 0.5]"]),
        (["--trick", "label-flip:p=lots"], ["--trick label-flip:p=lots", "expected float", "[0, 0.5]"]),
        (["--trick", "label-flip:p"], ["--trick 'label-flip:p'", "key=value"]),
        (["--gan-mode", "wgan", "--trick", "wgan-gp:lambda=-1"], ["--trick wgan-gp:lambda=-1", "out of range", "[0, 1000]"]),
        (["--gan-mode", "hinge", "--trick", "label-flip"], ["--trick label-flip", "--gan-mode hinge"]),
    ],
)
def test_bad_train_flags(tmp_path, run_cli, args, needles):
    code, _, err = run_cli("train", *args, "--dry-run", "--out", tmp_path / "runs")
    _one_line(code, err, *needles)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "body,needles",
    [
        ("size = [\n", ["not valid TOML", "line"]),
        ("stepz = 3\n", ["unknown key 'stepz'", "steps"]),
        ("[train]\nsize = 32\n", ["unknown key 'train'"]),
        ("size = 'big'\n", ["'size' = 'big'", "should be int"]),
        ("size = 17\n", ["--size 17", "multiple of 32"]),
        ("ngf = 4.5\n", ["'ngf' = 4.5", "should be int"]),
        ("lr = -0.1\n", ["--lr -0.1", "positive number"]),
        ("lr = nan\n", ["--lr nan", "positive number"]),
        ("lambda_l1 = -3\n", ["--lambda-l1 -3.0", ">= 0"]),
        ("seed = -1\n", ["--seed -1", "[0, 4294967295]"]),
        ("tricks = 5\n", ["'tricks' = 5", "should be a list"]),
        ("tricks = \"label-flip\"\n", ["'tricks' = 'label-flip'", "should be a list"]),
        ("tricks = [5]\n", ["tricks entry 5", "name:key=value"]),
        ("tricks = [\"label-flip:p=1.5\"]\n", ["label-flip:p=1.5", "out of range", "[0, 0.5]"]),
        ("tricks = [{name = \"label-flip\", params = {p = \"x\"}}]\n", ["label-flip:p=x", "expected float"]),
        ("tricks = [{name = \"label-flip\", params = 3}]\n", ["'params' must be a table"]),
    ],
)
def test_bad_config_files(tmp_path, run_cli, body, needles):
    cfg = tmp_path / "run.toml"
    cfg.write_text(body)
    code, _, err = run_cli("train", "--config", cfg, "--dry-run", "--out", tmp_path / "runs")
    _one_line(code, err, *needles)


def _study(tmp_path, body: str, train: str = 'size = 32\nngf = 4\nndf = 4\ndevice = "cpu"\nprecision = "fp32"\n'):
    path = tmp_path / "s.toml"
    path.write_text(f"# Question: a test.\n{body}\n[train]\n{train}")
    return path


@pytest.mark.parametrize(
    "body,needles",
    [
        ("[study\n", ["not valid TOML", "line 2"]),
        ("[study]\nstepz = 3\n", ["unknown key 'study.stepz'"]),
        ("[bogus]\nx = 1\n", ["unknown table 'bogus'", "allowed: study, train, search, tricks"]),
        ("[tricks]\nmaybe = [\"label-flip\"]\n", ["unknown key 'tricks.maybe'", "optional"]),
        ("[search]\nlearning_rate = [1e-3]\n", ["unknown key 'search.learning_rate'", "lr"]),
        ("[study]\nsteps = \"ten\"\n", ["'study.steps' = 'ten'", "whole number"]),
        ("[study]\nsteps = 0\n", ["'study.steps'", ">= 1"]),
        ("[study]\nobjectives = \"swd\"\n", ["'study.objectives' = 'swd'", "list"]),
        ("[study]\nseed = -1\n", ["'study.seed' = -1", "[0, 4294967295]"]),
        ("[study]\npopulation_size = 1\n", ["'study.population_size' = 1", ">= 2"]),
        ("[study]\nmax_retry = -1\n", ["'study.max_retry' = -1", ">= 0"]),
        ("[study]\nname = \"a/b\"\n", ["'study.name' = 'a/b'", "plain name"]),
        ("[search]\nlr = {low = \"a\", high = 1}\n", ["'search.lr.low' = 'a'", "a number"]),
        ("[search]\nsize = {choices = [\"big\", 64]}\n", ["[search]", "'size' = 'big'", "should be int"]),
        ("[search]\nngf = {low = 2.5, high = 8.5}\n", ["[search]", "'ngf' = 2.5", "should be int"]),
        ("[tricks]\noptional = [\"label-flip\"]\n[tricks.params.label-flip]\np = {low = 0, high = 1.5}\n",
         ["'tricks.params.label-flip.p'", "p=1.5", "[0, 0.5]"]),
        ("[tricks]\noptional = [\"label-flip\"]\n[tricks.fixed.label-flip]\np = 1.5\n",
         ["s.toml", "'tricks.fixed.label-flip'", "p=1.5", "[0, 0.5]"]),
        ("[tricks]\noptional = [\"nope\"]\n", ["unknown trick 'nope'"]),
    ],
)
def test_bad_study_files(tmp_path, run_cli, body, needles):
    f = _study(tmp_path, body)
    code, _, err = run_cli("study", "--study", f, "--trials", "1", "--out", tmp_path / "runs")
    _one_line(code, err, *needles)
    assert not (tmp_path / "runs" / "s").exists()


def test_a_bad_train_table_in_a_study_names_the_key(tmp_path, run_cli):
    f = _study(tmp_path, "[study]\nobjectives = [\"swd\"]\n", train="size = \"big\"\n")
    code, _, err = run_cli("study", "--study", f, "--trials", "1", "--out", tmp_path / "runs")
    _one_line(code, err, "[train]", "'size' = 'big'", "should be int")
    f = _study(tmp_path, "[study]\nobjectives = [\"swd\"]\n", train="size = 17\n")
    code, _, err = run_cli("study", "--study", f, "--trials", "1", "--out", tmp_path / "runs")
    _one_line(code, err, "--size 17", "multiple of 32")


def test_study_flags(tmp_path, run_cli):
    code, _, err = run_cli("study", "--bogus")
    _one_line(code, err, "unrecognized arguments: --bogus")
    code, _, err = run_cli("study", "--trials", "0")
    _one_line(code, err, "--trials 0", ">= 1")
    code, _, err = run_cli("study", "--name", "../up", "--out", tmp_path / "runs")
    _one_line(code, err, "--name '../up'", "plain name")


@pytest.fixture
def not_a_folder(tmp_path):
    f = tmp_path / "a-file"
    f.write_text("")
    return f


@pytest.mark.parametrize(
    "make_url,needles",
    [
        (lambda d, f: "postgresql://nobody@127.0.0.1:1/none", ["cannot open the study storage", "reachable"]),
        (lambda d, f: "foo://bar", ["--storage foo://bar", "cannot open the study storage"]),
        (lambda d, f: "mysql://x@127.0.0.1:1/db", ["driver is missing", "sqlite:///FILE.db"]),
        (lambda d, f: f"sqlite:///{f}/x.db", ["cannot create"]),
        (lambda d, f: f"sqlite:///{f}", ["not a SQLite database"]),
        (lambda d, f: f"journal://{f}/study.log", ["cannot write"]),
        (lambda d, f: f"journal://{d}/", ["give the journal file"]),
        (lambda d, f: f"{d}/garbage.log", ["not an Optuna journal"]),
    ],
    ids=["postgres-refused", "unknown-scheme", "no-driver", "sqlite-under-a-file", "sqlite-not-a-db",
         "journal-under-a-file", "journal-a-folder", "journal-garbage"],
)
def test_storages_that_cannot_be_used(tmp_path, run_cli, not_a_folder, make_url, needles):
    (tmp_path / "garbage.log").write_text("this is not a journal\n{\"half\":\n")
    not_a_folder.write_text("hello, not a database")
    url = make_url(tmp_path, not_a_folder)
    code, _, err = run_cli("study", "--storage", url, "--trials", "1", "--out", tmp_path / "runs")
    _one_line(code, err, "--storage", *needles)


def test_debug_shows_the_traceback(tmp_path, run_cli):
    with pytest.raises(UsageError, match="--size 17"):
        run_cli("--debug", "train", "--size", "17")
    with pytest.raises(UsageError, match="cannot open the study storage"):
        run_cli("study", "--debug", "--storage", "postgresql://nobody@127.0.0.1:1/none", "--trials", "1",
                "--out", tmp_path / "runs")
    cfg = tmp_path / "c.toml"
    cfg.write_text("tricks = 5\n")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-m", "ganlab", "train", "--config", str(cfg)], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("ganlab: error:")
    proc = subprocess.run([sys.executable, "-m", "ganlab", "--debug", "train", "--config", str(cfg)], capture_output=True,
                          text=True, env=env)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "should be a list" in proc.stderr
