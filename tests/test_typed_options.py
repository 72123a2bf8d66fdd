"""evaluate_run and bench take small frozen dataclasses, which the command line builds from its
flags: every field is a flag of its command, and a caller needs no argparse."""

from __future__ import annotations

import dataclasses

import pytest
from rich.console import Console

from ganlab.bench import BenchOptions, bench
from ganlab.errors import UsageError
from ganlab.evaluate import EvalOptions, evaluate_run


def _dests(command: str) -> set[str]:
    from ganlab.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices[command]
    return {a.dest for a in sub._actions}


@pytest.mark.parametrize("command, options", [("eval", EvalOptions), ("bench", BenchOptions)])
def test_every_option_is_a_flag_of_its_command(command, options):
    assert {f.name for f in dataclasses.fields(options)} <= _dests(command)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(options(**({"run_dir": "r"} if options is EvalOptions else {})), "device" if options is EvalOptions
                else "steps", 1)


def test_evaluate_run_takes_its_options(finished_run):
    result = evaluate_run(EvalOptions(run_dir=str(finished_run), no_download=True, device="cpu", n=2),
                          console=Console(quiet=True))
    assert result["metrics"]["swd"]["available"] and result["metrics"]["swd"]["n"] == 2
    with pytest.raises(UsageError, match="--n 1: need at least 2 images"):
        evaluate_run(EvalOptions(run_dir=str(finished_run), n=1), console=Console(quiet=True))


def test_bench_refuses_its_options_before_any_work():
    with pytest.raises(UsageError, match="--steps"):
        bench(BenchOptions(steps=0), Console(quiet=True), {})
    with pytest.raises(UsageError, match="--peak-tflops -1.0: must be a positive number"):
        bench(BenchOptions(peak_tflops=-1.0), Console(quiet=True), {})
