"""One name for the runs folder in every command: ``--runs`` (study, confirm, report); the
study's former ``--out`` still works, hidden from its help."""

from __future__ import annotations

import argparse

import optuna
import pytest

from test_study import study_file


def _sub(command: str) -> argparse.ArgumentParser:
    from ganlab.cli import build_parser

    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]


@pytest.mark.parametrize("command", ["study", "confirm", "report"])
def test_every_command_names_the_runs_folder_runs(command):
    sub = _sub(command)
    flags = {o for a in sub._actions for o in a.option_strings if a.dest == "runs" and a.help != argparse.SUPPRESS}
    assert flags == {"--runs"}
    args = ["NAME"] if command != "study" else []
    assert sub.parse_args([*args, "--runs", "elsewhere"]).runs == "elsewhere"
    assert sub.parse_args(args).runs == "runs"


def test_the_studys_out_is_a_hidden_alias_of_runs():
    from ganlab.cli.study import worker_argv

    sub = _sub("study")
    assert sub.parse_args(["--out", "old"]).runs == "old"
    assert "--out" not in sub.format_help() and "--runs DIR" in sub.format_help()
    argv = worker_argv(sub.parse_args(["--out", "old"]), "sqlite:///old/studies.db", None, 1, 2)
    assert argv[argv.index("--runs") + 1] == "old" and "--out" not in argv


def test_a_study_and_its_report_with_runs(tmp_path, image_dir, run_cli):
    f = study_file(tmp_path, image_dir, 'objectives = ["swd"]\n')
    code, _, err = run_cli("study", "--study", f, "--trials", "1", "--runs", tmp_path / "elsewhere")
    assert code == 0, err
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'elsewhere' / 'studies.db'}")
    assert len(study.trials) == 1 and str(tmp_path / "elsewhere" / "tiny") in study.trials[0].user_attrs["run_dir"]
    code, _, err = run_cli("study", "--study", f, "--trials", "1", "--out", tmp_path / "elsewhere")  # the old name
    assert code == 0, err
    assert len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'elsewhere' / 'studies.db'}").trials) == 2
    code, _, err = run_cli("report", "tiny", "--runs", tmp_path / "elsewhere")
    assert code == 0, err
    assert (tmp_path / "elsewhere" / "tiny" / "report").is_dir()
