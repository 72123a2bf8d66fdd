"""Every flag of every command, given a wrong value, is refused in one line: a wrong type, a
negative number, an empty value, a file that does not exist and a folder where a file is
expected, a URL with a password. One line on stderr, a non-zero exit, never a traceback, and the
password never printed.

The commands and their flags are read from the argparse parsers (``ganlab.cli.build_parser``),
not from a list kept by hand, so a new flag is fuzzed the day it is added. Every case also
carries a second invalid setting of its command (a data folder, study file or run folder that
does not exist, ``--steps 0``), so a value that happens to be valid never starts real work; the
cases run in this process through :func:`ganlab.cli.main`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ganlab.cli import build_parser, main

MISSING = "/nonexistent-ganlab-fuzz/missing"
SECRET = "S3cretFuzz"
URL_WITH_PASSWORD = f"postgresql://ganlab:{SECRET}@127.0.0.1:1/x"  # nothing listens on port 1


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _commands() -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """``("train",)``, ..., ``("checkpoint", "upgrade")`` where a command has sub-commands."""
    found = {}
    for name, sub in _subparsers(build_parser()).items():
        nested = _subparsers(sub)
        if nested:
            for inner, p in nested.items():
                found[(name, inner)] = p
        found[(name,)] = sub
    return found


# A second invalid setting per command, met as late as possible (a data folder, run folder or
# study that does not exist), so that the fuzzed value is checked first; and a guard met early
# (``--steps 0``), added only where the fuzzed flag is that late setting itself (an empty --data
# would otherwise mean the built-in sample set, and train).
def _base(command: tuple[str, ...], tmp: Path, target) -> list[tuple[str | None, list[str]]]:
    """The invalid settings each case carries: (flag or None for a positional, its values)."""
    storage = f"sqlite:///{tmp / 'none' / 'studies.db'}"
    name = command[0]
    late: list[tuple[str | None, list[str]]]
    guard: list[tuple[str | None, list[str]]] = []
    if name == "train":
        late, guard = [("--data", [MISSING])], [("--steps", ["0"])]
    elif name == "colorize":
        late, guard = [(None, [MISSING]), (None, [MISSING + ".png"]), ("--out", [str(tmp / "out")])], [("--max-side", ["-5"])]
    elif name == "export":
        late, guard = [(None, [MISSING]), ("--out", [str(tmp / "m.pt")])], [("--max-side", ["-5"])]
    elif name == "eval":
        late, guard = [(None, [MISSING])], [("--batch-size", ["0"])]
    elif name == "study":
        late, guard = [("--study", [MISSING + ".toml"]), ("--storage", [storage])], [("--trials", ["0"])]
    elif name == "confirm":
        late, guard = [(None, ["no-such-study"]), ("--storage", [storage])], [("--seeds", ["0"])]
    elif name == "report":
        late = [(None, ["no-such-study"]), ("--storage", [storage])]
    elif name == "bench":
        late, guard = [("--size", ["17"])], [("--steps", ["0"])]
    elif name == "tricks":
        late = [(None, ["no-such-trick"])]
    elif name == "checkpoint":
        late = [(None, ["upgrade"]), (None, [MISSING + ".pt"])]
    else:
        raise AssertionError(f"a command the fuzz test does not know how to keep from working: {command}")
    late_flags = [flag for flag, _ in late if flag is not None]
    positional_target = isinstance(target, int)
    if target in late_flags or positional_target or name == "bench":
        late = late + [g for g in guard if g[0] != target]
    return late


def _bad_values(action: argparse.Action, tmp: Path) -> list[tuple[str, str]]:
    folder = tmp / "a-folder"
    if tmp.is_dir():
        folder.mkdir(exist_ok=True)
    values = [("wrong type", "not-a-number" if action.type in (int, float) else "12x!?"),
              ("negative", "-1"), ("empty", ""), ("missing file", MISSING), ("folder for a file", str(folder)),
              ("URL with a password", URL_WITH_PASSWORD)]
    if action.choices is not None:
        values.append(("not a choice", "no-such-choice"))
    return values


def _cases():
    tmp = Path("/tmp/ganlab-fuzz-placeholder")  # replaced by each test's tmp_path
    cases = []
    for command, parser in _commands().items():
        if len(command) == 1 and _subparsers(parser):
            continue  # checkpoint: fuzzed through its sub-command
        positionals = [a for a in parser._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            if action.dest == "debug":
                continue  # shows tracebacks by design
            if action.option_strings:
                flag = max(action.option_strings, key=len)
                if action.nargs == 0:
                    cases.append(pytest.param(command, flag, None, id=f"{' '.join(command)} {flag}"))
                    continue
                for what, _ in _bad_values(action, tmp):
                    cases.append(pytest.param(command, flag, what, id=f"{' '.join(command)} {flag} {what}"))
            else:
                index = positionals.index(action)
                for what, _ in _bad_values(action, tmp):
                    cases.append(pytest.param(command, index, what, id=f"{' '.join(command)} {action.metavar or action.dest} {what}"))
    return cases


def _argv(command: tuple[str, ...], target, what: str | None, tmp: Path) -> list[str]:
    parser = _commands()[command]
    base = _base(command, tmp, target)
    if len(command) == 2:  # the sub-command name is the first positional of its parent's base
        base = [b for b in base if b != (None, [command[1]])]
    value = None
    if what is not None:
        action = next(a for a in parser._actions if (a.option_strings and max(a.option_strings, key=len) == target)) \
            if isinstance(target, str) else \
            [a for a in parser._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)][target]
        value = dict(_bad_values(action, tmp))[what]
    positional_values = [vals for flag, vals in base if flag is None]
    if isinstance(target, int):
        positional_values[target] = [value]
    argv = list(command)
    for vals in positional_values:
        argv += vals
    for flag, vals in base:
        if flag is not None and flag != target:
            argv += [flag, *vals]
    if isinstance(target, str):
        argv += [target] if value is None else [f"{target}={value}"]
    return argv


@pytest.mark.parametrize("command, target, what", _cases())
def test_a_bad_value_is_one_line_and_a_non_zero_exit(command, target, what, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything a command would create lies here
    argv = _argv(command, target, what, tmp_path)
    code = main(argv)  # an exception escaping main is the traceback this test forbids
    out, err = capsys.readouterr()
    errors = [ln for ln in err.splitlines() if ln.startswith("ganlab") and "error" in ln]
    assert "Traceback" not in err + out, (argv, err)
    assert SECRET not in err + out, (argv, err)  # a password given anywhere is never printed
    if what is None and target == "--dry-run":  # prints the resolved settings and does nothing: no data is read
        assert code == 0 and '"config"' in out, (argv, err)
        return
    assert code not in (0, None), (argv, err)
    assert len(errors) == 1, (argv, err)


def test_every_command_is_fuzzed():
    names = {c[0] for c in _commands()}
    assert {"train", "colorize", "export", "eval", "study", "confirm", "report", "bench", "tricks", "checkpoint"} <= names
    assert len(_cases()) > 500
