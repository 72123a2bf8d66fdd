"""A checkpoint whose configuration disagrees with its weights, or that holds no configuration,
is one line naming the file and what is wrong in every command that opens one (eval, colorize,
export, train --resume), never a traceback and never an output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import write_images

COMMANDS = ("eval", "colorize", "export", "resume")


def _defect(run: Path, defect: str) -> None:
    """Every checkpoint of ``run`` (and, for a resume's sake, its config.json) made to disagree."""
    for path in (run / "checkpoints").glob("*.pt"):
        payload = torch.load(path, weights_only=True)
        if defect == "mismatch":
            payload["config"]["ngf"] = payload["config"]["ngf"] * 2
        else:
            del payload["config"]
        torch.save(payload, path)
    if defect == "mismatch":
        cfg = json.loads((run / "config.json").read_text())
        cfg["ngf"] *= 2
        (run / "config.json").write_text(json.dumps(cfg))


def _args(command: str, run: Path, tmp_path: Path) -> list:
    if command == "eval":
        return ["eval", run, "--no-download", "--device", "cpu"]
    if command == "colorize":
        return ["colorize", run, write_images(tmp_path / "photos", 1), "--out", tmp_path / "out", "--device", "cpu"]
    if command == "export":
        (tmp_path / "out").mkdir()
        return ["export", run, "--out", tmp_path / "out" / "model.pt"]
    return ["train", "--resume", run, "--steps", "6", "--no-progress"]


@pytest.mark.parametrize("defect", ["mismatch", "no-config"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_checkpoint_that_disagrees_with_itself_is_one_line(finished_run, tmp_path, run_cli, command, defect):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    _defect(run, defect)
    code, _, err = run_cli(*_args(command, run, tmp_path))
    assert code != 0 and "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ganlab: error:")]
    assert len(errors) == 1 and errors[0] == lines[-1], err
    line = errors[0]
    assert str(run / "checkpoints" / "step-0000004.pt") in line
    if defect == "mismatch":
        assert "encoder.0.0.weight is (4, 1, 4, 4) in the file, (8, 1, 4, 4) in the network" in line
    else:
        assert "config" in line
    if command == "resume":
        passed_over = len(list((run / "checkpoints").glob("step-*.pt"))) if defect == "no-config" else 0
        assert len(lines) == 1 + passed_over  # each checkpoint passed over is said once, then the error
    else:
        assert len(lines) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.*"))
    assert not (run / "checkpoints" / "step-0000006.pt").exists()
