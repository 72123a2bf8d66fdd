"""The loop's extension point: hooks of one's own, called at the stated points in the stated order."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from ganlab.config import TrainConfig
from ganlab.train import Hook, checkpoint_files, train


class Recorder(Hook):
    def __init__(self, fail_at_eval: int | None = None):
        self.calls: list[tuple] = []
        self.fail_at_eval = fail_at_eval

    def before_train(self, loop):
        self.calls.append(("before_train", loop.start, (loop.run_dir / "config.json").is_file(), loop.log is None))

    def after_step(self, loop):
        self.calls.append(("after_step", loop.done, loop.saved))

    def after_eval(self, loop, step, metrics):
        self.calls.append(("after_eval", step, "val/swd" in metrics))
        if step == self.fail_at_eval:
            raise RuntimeError("enough")

    def after_train(self, loop):
        status = json.loads((loop.run_dir / "status.json").read_text())["status"]
        self.calls.append(("after_train", loop.status, status))


def _cfg(image_dir, tmp_path, **changes) -> TrainConfig:
    return TrainConfig(data=str(image_dir), size=32, load_size=40, ngf=4, ndf=4, batch_size=2, device="cpu", precision="fp32",
                       steps=4, eval_every=2, save_every=2, log_every=1, out=str(tmp_path / "runs"), **changes).validate()


def test_hooks_are_called_in_the_stated_order_beside_on_start_and_on_eval(tmp_path, image_dir):
    hook, seen = Recorder(), []
    result = train(_cfg(image_dir, tmp_path), hooks=[hook], progress=False, console=Console(quiet=True),
                   on_start=lambda run_dir: seen.append(("on_start", run_dir.name)),
                   on_eval=lambda step, metrics: seen.append(("on_eval", step)))
    assert hook.calls == [
        ("before_train", 0, True, True),  # the folder holds its configuration; the logs are not open yet
        ("after_step", 1, None),
        ("after_eval", 2, True),
        ("after_step", 2, 2),  # after the step's checkpoint
        ("after_step", 3, 2),
        ("after_eval", 4, True),
        ("after_step", 4, 4),
        ("after_train", "finished", "finished"),  # after the final status is written
    ]
    assert seen == [("on_start", result.run_dir.name), ("on_eval", 2), ("on_eval", 4)]


def test_a_hook_that_raises_after_an_evaluation_stops_the_run_before_its_checkpoint(tmp_path, image_dir):
    hook = Recorder(fail_at_eval=2)
    with pytest.raises(RuntimeError, match="enough"):
        train(_cfg(image_dir, tmp_path), hooks=[hook], progress=False, console=Console(quiet=True))
    run = next((tmp_path / "runs").iterdir())
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "stopped" and status["step"] == 0 and status["trained_step"] == 1
    assert checkpoint_files(run) == []
    assert hook.calls[-1] == ("after_train", "stopped", "stopped")


def test_a_hook_that_refuses_before_training_leaves_no_status(tmp_path, image_dir):
    class Refuse(Hook):
        def before_train(self, loop):
            raise RuntimeError("not today")

    with pytest.raises(RuntimeError, match="not today"):
        train(_cfg(image_dir, tmp_path), hooks=[Refuse()], progress=False, console=Console(quiet=True))
    run = next((tmp_path / "runs").iterdir())
    assert (run / "config.json").is_file() and not (run / "status.json").exists()
