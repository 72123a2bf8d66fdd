"""Opening a checkpoint never runs code: every reader loads it as data (weights_only=True).

A real checkpoint of a tiny run with one extra entry whose ``__reduce__`` creates a file is
refused in one line by ``colorize``, ``eval``, ``train --resume`` and ``read_checkpoint``, and
the file is never created. A checkpoint of the previous format (RNG states pickled as numpy
objects) is refused with the way to convert it, ``ganlab checkpoint upgrade FILE
--i-trust-this-file``, after which it loads and the run resumes bit for bit. A trick whose
state_dict() holds an arbitrary object fails the conformance kit with a sentence saying what to
store instead."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY, only_run, write_images
from ganlab.errors import GanlabError
from ganlab.testing import ConformanceError, check_state_round_trip
from ganlab.train import checkpoint_files, read_checkpoint
from ganlab.trick import Trick

LAST = "step-0000004.pt"


class CreatesAFile:
    """Unpickling this calls ``open(target, "w")``: the file existing afterwards shows code ran."""

    def __init__(self, target: Path):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.fixture
def run(tmp_path, finished_run) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def _plant(path: Path, target: Path, **save) -> None:
    """Add a payload entry to a real checkpoint, written as torch.save writes any file."""
    payload = torch.load(path, weights_only=True)
    payload["extra"] = CreatesAFile(target)
    torch.save(payload, path, **save)


def _to_previous_format(path: Path, **extra) -> None:
    """Rewrite a checkpoint as ganlab-checkpoint/1 wrote it: numpy's and Python's RNG states as
    the objects np.random.get_state() and random.getstate() return (plus ``extra`` entries)."""
    payload = dict(torch.load(path, weights_only=True), **extra)
    rng = payload["rng"]
    n = rng["numpy"]
    rng["numpy"] = ("MT19937", np.asarray(n["key"], dtype=np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    p = rng["python"]
    rng["python"] = (p["version"], tuple(p["state"]), p["gauss_next"])
    payload["format"] = "ganlab-checkpoint/1"
    torch.save(payload, path)


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("ganlab: error:") and "Traceback" not in err
    return lines[0]


def test_the_format_loads_as_data(finished_run):
    for path in checkpoint_files(finished_run):
        payload = torch.load(path, weights_only=True)
        assert payload["format"] == "ganlab-checkpoint/2"
        assert isinstance(payload["config"], dict) and isinstance(payload["rng"]["numpy"]["key"], list)
        assert isinstance(payload["rng"]["python"]["state"], list)


@pytest.mark.parametrize("archive", ["zip", "legacy"])
def test_read_checkpoint_refuses_a_payload_and_runs_nothing(run, tmp_path, archive):
    target = tmp_path / "pwned"
    crafted = run / "checkpoints" / LAST
    _plant(crafted, target, _use_new_zipfile_serialization=archive == "zip")
    with pytest.raises(GanlabError) as info:
        read_checkpoint(crafted)
    msg = str(info.value)
    assert "\n" not in msg and str(crafted) in msg and "could run code" in msg and "open" in msg
    assert not target.exists()


def test_colorize_refuses_a_payload_in_one_line(run, tmp_path, run_cli):
    target = tmp_path / "pwned"
    crafted = run / "checkpoints" / LAST
    _plant(crafted, target)
    photo = write_images(tmp_path / "photos", 1)
    code, _, err = run_cli("colorize", crafted, photo, "--out", tmp_path / "out", "--device", "cpu")
    assert code != 0
    line = _one_line(err)
    assert str(crafted) in line and "could run code" in line
    assert not target.exists() and not list((tmp_path / "out").glob("**/*.png"))
    code, _, err = run_cli("colorize", run, photo, "--out", tmp_path / "out", "--device", "cpu")  # its run folder
    assert code != 0 and str(crafted) in _one_line(err) and "falling back" not in err
    assert not target.exists()


@pytest.mark.parametrize("how", ["run folder", "checkpoint file"])
def test_eval_refuses_a_payload_in_one_line(run, tmp_path, run_cli, how):
    target = tmp_path / "pwned"
    crafted = run / "checkpoints" / LAST
    _plant(crafted, target)
    code, _, err = run_cli("eval", run if how == "run folder" else crafted, "--no-download", "--device", "cpu")
    assert code != 0
    line = _one_line(err)
    assert str(crafted) in line and "could run code" in line
    assert not target.exists() and not (run / "metrics.json").exists()


def test_resume_refuses_a_payload_in_its_newest_checkpoint(run, tmp_path, run_cli):
    target = tmp_path / "pwned"
    crafted = run / "checkpoints" / LAST
    _plant(crafted, target)
    code, _, err = run_cli("train", "--resume", run, "--steps", "6", "--no-progress")
    assert code != 0
    line = _one_line(err)
    assert str(crafted) in line and "could run code" in line  # not passed over for the older checkpoint
    assert not target.exists() and not (run / "checkpoints" / "step-0000006.pt").exists()


def test_a_planted_best_checkpoint_is_refused_in_one_line(run, tmp_path, run_cli):
    """best.pt is read as data by every reader: eval, colorize and a resume (its best so far)."""
    target = tmp_path / "pwned"
    crafted = run / "checkpoints" / "best.pt"
    _plant(crafted, target)
    photo = write_images(tmp_path / "photos", 1)
    for args in (("eval", run, "--checkpoint", "best", "--no-download", "--device", "cpu"),
                 ("colorize", run, photo, "--out", tmp_path / "out", "--checkpoint", "best", "--device", "cpu"),
                 ("train", "--resume", run, "--steps", "6", "--no-progress")):
        code, _, err = run_cli(*args)
        assert code != 0
        line = _one_line(err)
        assert str(crafted) in line and "could run code" in line, args
    assert not target.exists() and crafted.exists() and not (run / "checkpoints" / "step-0000006.pt").exists()


def test_upgrade_refuses_a_payload_even_when_trusted(run, tmp_path, run_cli):
    target = tmp_path / "pwned"
    crafted = run / "checkpoints" / LAST
    _to_previous_format(crafted, extra=CreatesAFile(target))
    code, _, err = run_cli("checkpoint", "upgrade", crafted, "--i-trust-this-file")
    assert code != 0
    line = _one_line(err)
    assert str(crafted) in line and "not converted" in line and "open" in line
    assert not target.exists() and not crafted.with_name(LAST + ".v1.bak").exists()


def test_a_previous_format_checkpoint_is_refused_with_the_way_to_convert_it(run, tmp_path, run_cli):
    old = run / "checkpoints" / LAST
    _to_previous_format(old)
    with pytest.raises(GanlabError) as info:
        read_checkpoint(old)
    msg = str(info.value)
    assert "\n" not in msg and str(old) in msg and "previous format" in msg
    assert f"ganlab checkpoint upgrade {old} --i-trust-this-file" in msg
    photo = write_images(tmp_path / "photos", 1)
    code, _, err = run_cli("colorize", old, photo, "--out", tmp_path / "out", "--device", "cpu")
    assert code != 0 and f"ganlab checkpoint upgrade {old} --i-trust-this-file" in _one_line(err)


def test_upgrade_without_the_flag_is_refused_in_one_line(run, run_cli):
    old = run / "checkpoints" / LAST
    _to_previous_format(old)
    before = old.read_bytes()
    code, _, err = run_cli("checkpoint", "upgrade", old)
    assert code == 2
    assert "--i-trust-this-file" in _one_line(err)
    assert old.read_bytes() == before and not old.with_name(LAST + ".v1.bak").exists()


def test_an_upgraded_run_resumes_bit_for_bit(tmp_path, image_dir, run_cli):
    common = ["--data", image_dir, *TINY, "--log-every", "3", "--eval-every", "4", "--save-every", "4"]
    assert run_cli("train", *common, "--steps", "8", "--out", tmp_path / "a")[0] == 0
    assert run_cli("train", *common, "--steps", "4", "--out", tmp_path / "b")[0] == 0
    run_b = only_run(tmp_path / "b")
    for path in checkpoint_files(run_b):
        _to_previous_format(path)
    code, _, err = run_cli("train", "--resume", run_b, "--steps", "8", "--no-progress")
    assert code != 0
    line = _one_line(err)
    assert "previous format" in line and f"ganlab checkpoint upgrade {run_b} --i-trust-this-file" in line
    code, out, err = run_cli("checkpoint", "upgrade", run_b, "--i-trust-this-file")
    assert code == 0, err
    assert "converted" in out and (run_b / "checkpoints" / "step-0000004.pt.v1.bak").exists()
    assert read_checkpoint(run_b / "checkpoints" / "step-0000004.pt", for_resume=True)["step"] == 4
    code, out, _ = run_cli("checkpoint", "upgrade", run_b / "checkpoints" / "step-0000004.pt", "--i-trust-this-file")
    assert code == 0 and "already in the current format" in out
    code, _, err = run_cli("train", "--resume", run_b, "--steps", "8", "--no-progress")
    assert code == 0, err
    name = "step-0000008.pt"
    a = torch.load(only_run(tmp_path / "a") / "checkpoints" / name, weights_only=True)
    b = torch.load(run_b / "checkpoints" / name, weights_only=True)
    for net in ("G", "D"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), (net, k)


def test_the_rng_states_round_trip_through_plain_data():
    from ganlab.train.checkpoint.rng import numpy_state as _numpy_state, plain_numpy_state as _plain_numpy_state
    from ganlab.train.checkpoint.rng import plain_python_state as _plain_python_state, python_state as _python_state

    np.random.seed(3)
    np.random.normal()  # a cached Gaussian
    random.seed(4)
    random.gauss(0, 1)
    n, p = np.random.get_state(), random.getstate()
    np.random.set_state(_numpy_state(_plain_numpy_state(n)))
    random.setstate(_python_state(_plain_python_state(p)))
    a = (np.random.normal(size=3).tolist(), random.gauss(0, 1), random.random())
    np.random.set_state(n)
    random.setstate(p)
    assert a == (np.random.normal(size=3).tolist(), random.gauss(0, 1), random.random())


class _KeepsAnObject(Trick):
    """A test trick whose state is an arbitrary object (a random.Random), not plain data."""

    name = "test-keeps-an-object"

    def __init__(self, params=None):
        super().__init__(params)
        self.helper = random.Random(0)

    def state_dict(self) -> dict:
        return {"helper": self.helper}

    def load_state_dict(self, state: dict) -> None:
        self.helper = state["helper"]


def test_the_conformance_kit_refuses_a_state_that_is_not_plain_data():
    with pytest.raises(ConformanceError) as info:
        check_state_round_trip(_KeepsAnObject)
    msg = str(info.value)
    assert "test-keeps-an-object" in msg and "['helper']" in msg and "not plain data" in msg
    assert "weights_only=True" in msg and "store the object's tensors and numbers" in msg


class RunsTextThroughTorch:
    """Unpickling this calls ``torch.fx.graph_module._forward_from_src``, a torch function that
    runs the Python text it is given (here: create ``target``)."""

    def __init__(self, target: Path):
        self.target = str(target)

    def __reduce__(self):
        from torch.fx.graph_module import _forward_from_src

        src = f"open({self.target!r}, 'w').close()\ndef forward(self):\n    return None\n"
        return (_forward_from_src, (src, {}))


@pytest.mark.parametrize("archive", ["zip", "legacy"])
def test_upgrade_refuses_a_torch_callable_that_is_not_on_the_allow_list(run, tmp_path, run_cli, archive):
    """A file tagged ganlab-checkpoint/1 whose pickle calls a torch function that is not one of
    the tensor rebuilders a v1 checkpoint holds: refused before anything is unpickled."""
    target = tmp_path / "pwned"
    crafted = run / "checkpoints" / LAST
    payload = torch.load(crafted, weights_only=True)
    payload.update(format="ganlab-checkpoint/1", extra=RunsTextThroughTorch(target))
    torch.save(payload, crafted, _use_new_zipfile_serialization=archive == "zip")
    before = crafted.read_bytes()
    code, _, err = run_cli("checkpoint", "upgrade", crafted, "--i-trust-this-file")
    assert code != 0
    line = _one_line(err)
    assert str(crafted) in line and "not converted" in line and "torch.fx.graph_module._forward_from_src" in line
    assert not target.exists()
    assert crafted.read_bytes() == before and not crafted.with_name(LAST + ".v1.bak").exists()
    with pytest.raises(GanlabError, match="could run code") as info:  # and a reader names it too
        read_checkpoint(crafted)
    assert "_forward_from_src" in str(info.value) and "previous format" not in str(info.value)
    assert not target.exists()


def test_the_allow_list_holds_what_a_previous_format_file_names(run):
    """The scan of a real v1 file (tensors, an OrderedDict state dict, numpy's RNG array) names
    only allow-listed globals, and the current format names no numpy ones."""
    from ganlab.train.checkpoint.scan import CHECKPOINT_GLOBALS, PREVIOUS_FORMAT_GLOBALS, pickle_globals

    path = run / "checkpoints" / LAST
    current = pickle_globals(path)
    assert current.complete and not current.tagged and current.globals <= CHECKPOINT_GLOBALS
    assert "torch._utils._rebuild_tensor_v2" in current.globals
    _to_previous_format(path)
    old = pickle_globals(path)
    assert old.complete and old.tagged and old.globals <= PREVIOUS_FORMAT_GLOBALS
    assert old.globals - CHECKPOINT_GLOBALS  # numpy's array of the MT19937 state
