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
