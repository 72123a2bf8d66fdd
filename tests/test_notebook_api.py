"""The Python API at ganlab's top level: the README's notebook example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import ganlab
from ganlab.errors import UsageError
from test_study import study_file

README = Path(__file__).resolve().parents[1] / "README.md"
TINY = dict(size=32, load_size=40, ngf=4, ndf=4, batch_size=2, device="cpu", precision="fp32", steps=4, eval_every=2)


def readme_example() -> str:
    section = README.read_text().split("## From a notebook", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None, "README.md: the 'From a notebook' section has no python block"
    return block.group(1)


def test_importing_ganlab_loads_neither_torch_nor_optuna_nor_pandas():
    probe = "import sys, ganlab\nganlab.fit, ganlab.trials\nprint(sorted(m for m in ('torch', 'optuna', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_readme_notebook_example_runs(tmp_path, image_dir, monkeypatch):
    """The README's block, executed as it stands; the runs are made tiny by wrapping the
    functions it calls (smaller networks and fewer steps, trials and seeds), nothing else."""
    monkeypatch.chdir(tmp_path)
    tiny_study = study_file(tmp_path, image_dir, 'objectives = ["swd", "instability"]\npopulation_size = 2\n'
                            '[tricks]\noptional = ["soft-labels"]\n', name="quickstart")
    fit, run_study, confirm = ganlab.fit, ganlab.run_study, ganlab.confirm
    calls = []

    def tiny_fit(**kw):
        calls.append(("fit", kw))
        return fit(**{**kw, **TINY, "data": str(image_dir)}, progress=False)

    def tiny_run_study(study, **kw):
        calls.append(("run_study", study, kw))
        assert study == "quickstart"
        return run_study(tiny_study, **{**kw, "trials": 2})

    def tiny_confirm(name, **kw):
        calls.append(("confirm", name, kw))
        return confirm(name, **{**kw, "seeds": 2})

    monkeypatch.setattr(ganlab, "fit", tiny_fit)
    monkeypatch.setattr(ganlab, "run_study", tiny_run_study)
    monkeypatch.setattr(ganlab, "confirm", tiny_confirm)
    scope: dict = {}
    exec(compile(readme_example(), "README.md (From a notebook)", "exec"), scope)

    assert [c[0] for c in calls] == ["fit", "run_study", "confirm"]
    run = scope["run"]
    assert run.step == 4 and (run.run_dir / "config.json").is_file() and "val/swd" in run.metrics
    trials, effects, arms = scope["trials"], scope["effects"], scope["arms"]
    assert len(trials) == 2 and set(trials.state) == {"COMPLETE"}
    assert {"number", "state", "swd", "instability", "run_dir"} <= set(trials.columns)
    assert trials.swd.notna().all()
    # the baseline and the L1-only control are confirmed beside the chosen configuration
    assert set(arms.configuration) >= {"baseline", "l1-only"} and (arms.n == 2).all()
    assert {"effect", "against", "objective", "difference", "low", "high", "verdict"} <= set(effects.columns)
    assert len(effects) > 0 and set(effects.objective) == {"swd", "instability"}
    assert effects.verdict.str.startswith(("no detectable", "not comparable")).all()  # 2 seeds decide nothing


def test_fit_refuses_a_setting_that_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"ganlab.fit\(stpes=...\): not a training setting"):
        ganlab.fit(stpes=10)
    with pytest.raises(UsageError, match="--size 33"):
        ganlab.fit(size=33)
    assert not (tmp_path / "runs").exists()


def test_study_arguments_are_the_commands(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="--trials 0: must be a whole number >= 1"):
        ganlab.run_study(trials=0)
    with pytest.raises(UsageError, match="unrecognized arguments: --colour"):
        ganlab.run_study(colour="red")
    with pytest.raises(UsageError, match="no such study file"):
        ganlab.trials("nothing")


def test_keywords_become_the_commands_flags():
    from ganlab.api import _argv

    assert _argv(["tiny"], {"seeds": 5, "val_data": Path("v"), "primary": True, "plan": False, "top": None,
                            "equivalence": ["swd=0.1", "0.2"]}) == [
        "tiny", "--seeds", "5", "--val-data", "v", "--primary", "--equivalence", "swd=0.1", "--equivalence", "0.2"]
