"""A trick from another package, found through its entry point, listed and used with no change to ganlab.

The package is a throw-away module plus a ``.dist-info`` folder with ``entry_points.txt`` --
exactly what ``pip install`` writes -- put on the path, so discovery goes through
``importlib.metadata`` like an installed plugin's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import TINY

PLUGIN = textwrap.dedent(
    '''
    """A tiny third-party ganlab trick."""
    from dataclasses import dataclass

    from ganlab.trick import Trick, param
    from ganlab.stats import report


    @dataclass(frozen=True)
    class TinyParams:
        scale: float = param(0.8, low=0.0, high=1.0, search=(0.5, 1.0), help="factor for D's real targets")


    class TinyTrick(Trick):
        """Tiny trick: multiplies D's real targets by ``scale``.

        Paper: Nobody et al., "A Trick for Tests", 2024.
        """

        name = "tiny-trick"
        Params = TinyParams
        summary = "real targets times scale"
        paper = "Nobody et al., A Trick for Tests, 2024"
        requires = frozenset({"label-targets"})
        requires_reason = {"label-targets": "it scales D's 0/1 targets"}
        identity = {"scale": 1.0}

        def __init__(self, params=None):
            super().__init__(params)
            self.calls = 0

        def d_targets(self, t_real, t_fake, ctx):
            self.calls += 1
            report("tricks/tiny_target", t_real.mean())
            return t_real * self.params.scale, t_fake

        def state_dict(self):
            return {"calls": self.calls}

        def load_state_dict(self, state):
            self.calls = state["calls"]
    '''
)


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "ganlab_tinytrick.py").write_text(PLUGIN)
    info = root / "ganlab_tinytrick-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ganlab-tinytrick\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ganlab.tricks]\ntiny-trick = ganlab_tinytrick:TinyTrick\n")
    return root


def _ganlab(plugin_dir: Path, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_dir), env.get("PYTHONPATH", "")]))
    env["COLUMNS"] = "200"
    env["OMP_NUM_THREADS"] = "1"  # tiny networks: one thread is fastest
    return subprocess.run([sys.executable, "-m", "ganlab", *map(str, args)], capture_output=True, text=True, env=env, timeout=600)


def test_a_plugin_is_used_by_ganlab_train_in_a_fresh_process(plugin_dir, tmp_path, image_dir):
    out = tmp_path / "runs"
    trained = _ganlab(plugin_dir, "train", *TINY, "--data", image_dir, "--steps", "3", "--eval-every", "0",
                      "--log-every", "1", "--out", out, "--trick", "tiny-trick:scale=0.5", "--trick", "label-flip")
    assert trained.returncode == 0, trained.stderr
    assert "tricks (in order): label-flip -> tiny-trick" in trained.stderr  # ties on order: by name
    run = next(out.iterdir())
    described = json.loads((run / "tricks.json").read_text())
    assert [(t["name"], t["params"]) for t in described] == [("label-flip", {"p": 0.05}), ("tiny-trick", {"scale": 0.5})]
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert sum("tricks/tiny_target" in r for r in rows) == 3


def test_a_plugin_is_listed_documented_and_checked(plugin_dir, monkeypatch, run_cli, tmp_path):
    monkeypatch.syspath_prepend(str(plugin_dir))
    code, out, _ = run_cli("tricks")
    assert code == 0 and "tiny-trick" in out and "soft-labels" in out
    code, out, _ = run_cli("tricks", "tiny-trick")
    assert code == 0 and "A Trick for Tests" in out and "scale" in out
    code, _, err = run_cli("train", *TINY, "--steps", "1", "--out", tmp_path / "r", "--trick", "tiny-trick", "--trick", "wgan-gp")
    assert code == 2
    assert "--trick tiny-trick cannot be combined with --trick wgan-gp: it scales D's 0/1 targets" in err


def test_a_plugin_passes_the_shipped_conformance_checks(plugin_dir, monkeypatch):
    from ganlab.trick._registry import registry
    from ganlab.testing import check_trick

    monkeypatch.syspath_prepend(str(plugin_dir))
    assert "tiny-trick" in registry()
    assert check_trick("tiny-trick") == {"identity": "passed", "shapes": "passed", "state_round_trip": "passed", "determinism": "passed"}


def test_a_broken_plugin_does_not_take_ganlab_down(tmp_path, monkeypatch):
    root = tmp_path / "broken"
    info = root / "ganlab_broken-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ganlab-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ganlab.tricks]\nbroken = ganlab_missing_module:Nothing\n")
    monkeypatch.syspath_prepend(str(root))
    from ganlab.trick._registry import registry

    with pytest.warns(UserWarning, match="trick plugin 'broken'.*failed to load"):
        known = registry()
    assert "broken" not in known and "soft-labels" in known
