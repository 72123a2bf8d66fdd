"""Start-up costs: what each command imports, and the sample grid without torchvision."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

HEAVY = ("torchvision", "optuna", "matplotlib", "scipy", "torch._dynamo", "tensorboard")


def _imported_after(code: str) -> set[str]:
    """The top-level (and torch._dynamo) modules loaded by ``code`` in a fresh interpreter."""
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return {m for m in json.loads(out.splitlines()[-1]) if m in HEAVY or m == "torch"}


def test_help_imports_no_torch_and_the_trainer_none_of_the_study_libraries():
    assert _imported_after("from ganlab.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass") == set()
    assert _imported_after("from ganlab.cli import main\nmain(['train', '--help'])") == set()
    tricks = _imported_after("from ganlab.cli import main\nmain(['tricks'])")
    assert not tricks & {"optuna", "matplotlib", "tensorboard", "torchvision", "torch._dynamo"}
    # What a training run loads before its first step (TensorBoard's writer is imported when the run starts).
    train = _imported_after("import ganlab.train.loop, ganlab.train.inloop, ganlab.cli.train")
    assert not train & {"optuna", "matplotlib", "torchvision", "torch._dynamo", "scipy"}


def test_the_sample_grid_is_torchvisions_layout():
    from torchvision.utils import make_grid

    from ganlab.train.inloop import _grid

    rows = torch.rand(4, 3, 3, 8, 10)
    assert torch.equal(_grid(rows), make_grid(rows.flatten(0, 1), nrow=3, padding=2, pad_value=1.0))


def test_the_program_ends_quickly_but_finishes_what_it_started(tmp_path):
    """``ganlab`` (``entry``) skips the interpreter's slow teardown, yet a thread still writing,
    an ``atexit`` handler and buffered output all complete, and the exit code is main's."""
    probe = f"""
import atexit, threading, time, pathlib, sys
import ganlab.cli as cli
out = pathlib.Path({str(tmp_path)!r})
def main():
    def late():
        time.sleep(0.3)
        (out / "thread").write_text("done")
    threading.Thread(target=late).start()
    atexit.register(lambda: (out / "atexit").write_text("done"))
    sys.stdout.write("buffered " * 2000)  # left in the buffer: the pipe is not a terminal
    return 3
cli.main = main
cli.entry()
raise AssertionError("entry() returned")
"""
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert res.returncode == 3, res.stderr
    assert res.stdout == "buffered " * 2000
    assert (tmp_path / "thread").read_text() == "done" and (tmp_path / "atexit").read_text() == "done"


def test_the_module_entry_point_exits_with_the_commands_code():
    ok = subprocess.run([sys.executable, "-m", "ganlab", "tricks"], capture_output=True, text=True)
    assert ok.returncode == 0 and "label-flip" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "ganlab", "train", "--trick", "no-such-trick"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no-such-trick" in bad.stderr
