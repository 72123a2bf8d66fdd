"""``ganlab export``: a TorchScript (or ONNX) model that runs without ganlab and gives the pixels
of ``ganlab colorize`` on images of any size, colour or grey; bad input is one line."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY, colour_image, only_run

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit:FutureWarning")  # TorchScript still loads with torch alone

# Loads the model with torch alone: importing ganlab is made impossible, and checked not to happen.
FRESH_PROCESS = r"""
import sys

class NoGanlab:
    def find_spec(self, name, path=None, target=None):
        if name == "ganlab" or name.startswith("ganlab."):
            raise ImportError("the exported model must not need ganlab")

sys.meta_path.insert(0, NoGanlab())
import numpy as np
import torch

extra = {"ganlab.json": ""}
model = torch.jit.load(sys.argv[1], _extra_files=extra)
for name in sys.argv[2:]:
    np.save(name + ".out.npy", model(torch.from_numpy(np.load(name))).numpy())
assert "ganlab" not in sys.modules
print(extra["ganlab.json"].decode())
"""


def _images(folder: Path) -> dict[str, np.ndarray]:
    """An odd-sized colour image and an odd-sized grey one (saved as a one-channel PNG)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    colour = colour_image(rng, 37, 53)
    grey = colour_image(rng, 45, 29)[..., 1]
    Image.fromarray(colour).save(folder / "colour.png")
    Image.fromarray(grey, mode="L").save(folder / "grey.png")
    return {"colour": colour.transpose(2, 0, 1)[None], "grey": grey[None, None]}


def _colorize(run_cli, run: Path, folder: Path, out: Path) -> dict[str, np.ndarray]:
    code, _, err = run_cli("colorize", run, folder, "--out", out, "--device", "cpu")
    assert code == 0, err
    return {p.stem: np.asarray(Image.open(p).convert("RGB")).transpose(2, 0, 1)[None] for p in out.glob("*.png")}


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape and a.dtype == np.uint8 and b.dtype == np.uint8, (a.shape, b.shape, a.dtype, b.dtype)
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def _one_line_error(err: str) -> None:
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


@pytest.fixture(scope="module")
def paired_run(tmp_path_factory):
    """A finished tiny B -> A run on generated side-by-side pairs."""
    from ganlab.cli import main

    root = tmp_path_factory.mktemp("paired-export")
    rng = np.random.default_rng(1)
    (root / "pairs").mkdir()
    for i in range(4):
        b = colour_image(rng, 40, 40)
        Image.fromarray(np.concatenate((255 - b, b), axis=1)).save(root / "pairs" / f"p{i}.png")
    assert main(["train", "--data", str(root / "pairs"), "--task", "paired", "--direction", "BtoA", *TINY, "--steps", "2",
                 "--eval-every", "1000", "--out", str(root / "runs")]) == 0
    return only_run(root / "runs")


def test_the_torchscript_model_gives_colorizes_pixels_in_a_process_without_ganlab(finished_run, run_cli, tmp_path):
    inputs = _images(tmp_path / "photos")
    expected = _colorize(run_cli, finished_run, tmp_path / "photos", tmp_path / "colourised")
    model = tmp_path / "out" / "colorizer.pt"
    model.parent.mkdir()
    code, _, err = run_cli("export", finished_run, "--out", model)
    assert code == 0, err
    assert "torchscript" in err and "within 0/255" in err
    assert [p.name for p in model.parent.iterdir()] == ["colorizer.pt"]  # no temporary file left
    work = tmp_path / "fresh"  # not the repository: nothing of ganlab on the path but what is installed
    work.mkdir()
    for name, x in inputs.items():
        np.save(work / f"{name}.npy", x)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(model), *(str(work / f"{n}.npy") for n in inputs)],
                          cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name in inputs:
        got = np.load(work / f"{name}.npy.out.npy")
        assert got.shape == (1, 3, *inputs[name].shape[-2:])
        assert _max_diff(got, expected[name]) <= 1, name
    meta = json.loads(done.stdout)
    assert meta["run"] == finished_run.name and meta["step"] == "4" and meta["task"] == "colorize"
    assert meta["direction"].startswith("grey -> colour") and meta["weights"] == "G" and meta["chosen_by"] == "auto"
    from ganlab import __version__

    assert meta["ganlab_version"] == __version__


def test_a_paired_model_translates_in_the_runs_direction(paired_run, run_cli, tmp_path):
    import torch

    rng = np.random.default_rng(2)
    src = tmp_path / "src"
    src.mkdir()
    img = colour_image(rng, 35, 51)
    Image.fromarray(img).save(src / "b.png")
    expected = _colorize(run_cli, paired_run, src, tmp_path / "translated")["b"]
    ckpt = sorted((paired_run / "checkpoints").glob("step-*.pt"))[-1]
    code, _, err = run_cli("export", ckpt, "--out", tmp_path / "translator.pt", "--checkpoint", "latest")  # a checkpoint file
    assert code == 0, err
    extra = {"ganlab.json": ""}
    model = torch.jit.load(str(tmp_path / "translator.pt"), _extra_files=extra)
    got = model(torch.from_numpy(img.transpose(2, 0, 1)[None].copy())).numpy()
    assert _max_diff(got, expected) <= 1
    meta = json.loads(extra["ganlab.json"])
    assert meta["task"] == "paired" and meta["direction"] == "B -> A" and meta["run"] == paired_run.name
    assert meta["chosen_by"] == "latest" and meta["checkpoint"] == ckpt.name
    with pytest.raises(Exception, match="uint8"):
        model(torch.zeros(1, 3, 8, 8))


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None,
                    reason="onnx and onnxruntime are not installed (pip install 'ganlab[export]' onnxruntime)")
def test_the_onnx_model_gives_colorizes_pixels_in_onnxruntime(finished_run, run_cli, tmp_path):
    import onnx
    import onnxruntime as ort

    inputs = _images(tmp_path / "photos")
    # --max-side 40: the network sees a shrunken copy of the 53 px image, as colorize does
    code, _, err = run_cli("colorize", finished_run, tmp_path / "photos", "--out", tmp_path / "colourised", "--device", "cpu",
                           "--max-side", "40")
    assert code == 0, err
    expected = {p.stem: np.asarray(Image.open(p).convert("RGB")).transpose(2, 0, 1)[None]
                for p in (tmp_path / "colourised").glob("*.png")}
    code, _, err = run_cli("export", finished_run, "--out", tmp_path / "colorizer.onnx", "--max-side", "40")
    assert code == 0, err
    assert "as onnx" in err
    session = ort.InferenceSession(str(tmp_path / "colorizer.onnx"), providers=["CPUExecutionProvider"])
    for name, x in inputs.items():
        assert _max_diff(session.run(None, {"image": x})[0], expected[name]) <= 1, name
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "colorizer.onnx")).metadata_props}
    assert props["run"] == finished_run.name and props["step"] == "4" and props["task"] == "colorize"
    assert props["max_side"] == "40" and "ganlab_version" in props and "direction" in props


def test_bad_input_is_one_line_and_writes_nothing(finished_run, run_cli, tmp_path, monkeypatch):
    out = tmp_path / "model.pt"
    # a run with no checkpoint
    empty = tmp_path / "no-checkpoint"
    (empty / "checkpoints").mkdir(parents=True)
    shutil.copy(finished_run / "config.json", empty / "config.json")
    code, _, err = run_cli("export", empty, "--out", out)
    assert code != 0 and "no checkpoint" in err
    _one_line_error(err)
    # ema on a run that kept no moving average
    code, _, err = run_cli("export", finished_run, "--out", out, "--checkpoint", "ema")
    assert code != 0 and "moving average" in err and "--trick g-ema" in err
    _one_line_error(err)
    # an --out that cannot be written: under a file, in a folder that does not exist, a folder
    (tmp_path / "a-file").write_text("x")
    for bad, needle in ((tmp_path / "a-file" / "model.pt", "not a folder"), (tmp_path / "nowhere" / "model.pt", "does not exist"),
                        (tmp_path, "is a folder")):
        code, _, err = run_cli("export", finished_run, "--out", bad)
        assert code == 2 and needle in err, err
        _one_line_error(err)
    code, _, err = run_cli("export", finished_run, "--out", out, "--max-side", "-1")
    assert code == 2 and "--max-side" in err
    # ONNX where the onnx package is missing
    import ganlab.export

    monkeypatch.setattr(ganlab.export, "onnx_available", lambda: "the onnx package is not installed (pip install 'ganlab[export]')")
    code, _, err = run_cli("export", finished_run, "--out", tmp_path / "model.onnx")
    assert code == 2 and "ganlab[export]" in err and "--format torchscript" in err
    _one_line_error(err)
    assert not out.exists() and not list(tmp_path.glob(".model.*")) and not (tmp_path / "model.onnx").exists()
