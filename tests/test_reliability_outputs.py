"""Outputs never replace inputs, and a diverged checkpoint never becomes black images:
``colorize`` refuses an ``--out`` that would overwrite one of its inputs; ``export`` refuses a
run's ``checkpoints/``, special files and (without ``--overwrite``) an existing file; a
checkpoint with NaN weights is refused by name or passed over for the newest good one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganlab.cli import main
from ganlab.train.checkpoint import checkpoint_files

from conftest import TINY, colour_image, only_run

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit:FutureWarning")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run with checkpoints at steps 2 and 4 and a best.pt."""
    root = tmp_path_factory.mktemp("outputs")
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(colour_image(rng, 48, 48)).save(data / f"img{i}.png")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", "--data", str(data), *TINY, "--steps", "4", "--save-every", "2", "--eval-every", "2",
                     "--out", str(root / "runs")]) == 0
    finally:
        torch.set_num_threads(before)
    return only_run(root / "runs")


def _cli(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("ganlab: error")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _image(path: Path, seed: int = 0) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(colour_image(np.random.default_rng(seed), 24, 30)).save(path)
    return path.read_bytes()


# --- colorize: --out never replaces an input ---------------------------------------------------
def test_colorize_out_beside_its_input_png_is_refused(run, tmp_path, capsys, monkeypatch):
    before = _image(tmp_path / "old.png")
    monkeypatch.chdir(tmp_path)
    code, err = _cli(capsys, "colorize", run, "old.png", "--out", ".", "--device", "cpu")
    assert code == 2
    assert "would replace the input" in _one_line(err) and "old.png" in err
    assert (tmp_path / "old.png").read_bytes() == before


def test_colorize_out_onto_its_own_input_tree_is_refused(run, tmp_path, capsys):
    photos = tmp_path / "photos"
    before = {p: _image(photos / p, i) for i, p in enumerate(("a.jpg", "2019/b.png", "2019/c.png"))}
    code, err = _cli(capsys, "colorize", run, photos, "--out", photos, "--device", "cpu")
    assert code == 2 and "would replace the input" in _one_line(err)
    assert {p: (photos / p).read_bytes() for p in before} == before
    assert sorted(q.relative_to(photos).as_posix() for q in photos.rglob("*") if q.is_file()) == sorted(before)


def test_colorize_out_through_a_link_to_the_input_folder_is_refused(run, tmp_path, capsys):
    before = _image(tmp_path / "photos" / "a.png")
    (tmp_path / "alias").symlink_to(tmp_path / "photos")
    code, err = _cli(capsys, "colorize", run, tmp_path / "photos", "--out", tmp_path / "alias", "--device", "cpu")
    assert code == 2 and "would replace the input" in _one_line(err)
    assert (tmp_path / "photos" / "a.png").read_bytes() == before


def test_colorize_jpgs_into_their_own_folder_still_works(run, tmp_path, capsys):
    _image(tmp_path / "photos" / "a.jpg")
    code, err = _cli(capsys, "colorize", run, tmp_path / "photos", "--out", tmp_path / "photos", "--device", "cpu")
    assert code == 0, err
    assert (tmp_path / "photos" / "a.png").is_file()


def test_colorize_a_symlink_loop_among_the_inputs_is_one_line(run, tmp_path, capsys):
    loop = tmp_path / "loop"
    loop.mkdir()
    (loop / "a.png").symlink_to("b.png")
    (loop / "b.png").symlink_to("a.png")
    _image(loop / "good.png")
    code, err = _cli(capsys, "colorize", run, loop, "--out", tmp_path / "out", "--device", "cpu")
    assert code == 0 and "Traceback" not in err, err
    assert "Too many levels of symbolic links" in err and (tmp_path / "out" / "good.png").is_file()
    code, err = _cli(capsys, "colorize", run, loop / "a.png", "--out", tmp_path / "out2", "--device", "cpu")
    assert code == 2 and "loop of symbolic links" in _one_line(err)


# --- export: never onto a checkpoint, a special file or (without --overwrite) an existing file --
def test_export_refuses_a_file_inside_the_runs_checkpoints(run, capsys):
    newest = checkpoint_files(run)[0]
    before = newest.read_bytes()
    code, err = _cli(capsys, "export", run, "--out", newest)
    assert code == 2 and "checkpoints/" in _one_line(err)
    code, err = _cli(capsys, "export", run, "--out", newest, "--overwrite")
    assert code == 2 and "checkpoints/" in _one_line(err)
    code, err = _cli(capsys, "export", run, "--out", run / "checkpoints" / "model.pt")
    assert code == 2 and "checkpoints/" in _one_line(err)
    assert newest.read_bytes() == before and not (run / "checkpoints" / "model.pt").exists()


def test_export_refuses_a_fifo_and_a_device(run, tmp_path, capsys):
    fifo = tmp_path / "model.pt"
    os.mkfifo(fifo)
    code, err = _cli(capsys, "export", run, "--out", fifo, "--overwrite")
    assert code == 2 and "not a regular file" in _one_line(err)
    assert fifo.is_fifo()
    code, err = _cli(capsys, "export", run, "--out", "/dev/null", "--overwrite")
    assert code == 2 and "not a regular file" in _one_line(err)
    assert Path("/dev/null").is_char_device()


def test_export_refuses_an_existing_file_unless_overwrite(run, tmp_path, capsys):
    out = tmp_path / "model.pt"
    out.write_bytes(b"mine")
    code, err = _cli(capsys, "export", run, "--out", out)
    assert code == 2 and "--overwrite" in _one_line(err)
    assert out.read_bytes() == b"mine"
    code, err = _cli(capsys, "export", run, "--out", out, "--overwrite")
    assert code == 0, err
    assert out.read_bytes()[:2] == b"PK"


def test_export_onnx_without_onnxruntime_says_it_was_not_checked(run, tmp_path, capsys, monkeypatch):
    pytest.importorskip("onnx")
    import ganlab.export

    monkeypatch.setattr(ganlab.export, "_run_onnx", lambda data, x: None)  # as without onnxruntime
    code, err = _cli(capsys, "export", run, "--out", tmp_path / "m.onnx")
    assert code == 0, err
    assert "not checked against ganlab colorize (onnxruntime is not installed" in err


# --- NaN weights ---------------------------------------------------------------------------------
def _poison(path: Path, key: str = "G") -> None:
    payload = torch.load(path, weights_only=True)
    name = next(n for n, t in payload[key].items() if t.is_floating_point())
    payload[key][name] = torch.full_like(payload[key][name], float("nan"))
    torch.save(payload, path)


@pytest.fixture
def nan_run(run, tmp_path):
    """A copy of the run whose newest checkpoint and best.pt hold a NaN weight."""
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    _poison(checkpoint_files(copy)[0])
    _poison(copy / "checkpoints" / "best.pt")
    return copy


def test_colorize_passes_over_a_nan_newest_checkpoint(nan_run, tmp_path, capsys):
    _image(tmp_path / "in" / "a.png")
    newest, older = checkpoint_files(nan_run)[:2]
    with pytest.warns(UserWarning, match=f"{newest.name} holds NaN or Inf weights.*falling back"):
        code, err = _cli(capsys, "colorize", nan_run, tmp_path / "in", "--out", tmp_path / "out", "--device", "cpu")
    assert code == 0, err
    assert older.name in err
    assert np.asarray(Image.open(tmp_path / "out" / "a.png")).max() > 0  # not the all-black picture


def test_eval_passes_over_a_nan_newest_checkpoint_and_reports_a_named_one_as_unavailable(nan_run, tmp_path, capsys):
    import json

    _image(tmp_path / "in" / "a.png")
    _image(tmp_path / "in" / "b.png", 1)
    newest, older = checkpoint_files(nan_run)[:2]
    with pytest.warns(UserWarning, match=f"{newest.name} holds NaN or Inf weights.*falling back"):
        code, err = _cli(capsys, "eval", nan_run, "--data", tmp_path / "in", "--no-download", "--device", "cpu")
    assert code == 0, err
    result = json.loads((nan_run / "metrics.json").read_text())
    assert Path(result["checkpoint_file"]).name == older.name and result["metrics"]["swd"]["available"]
    # a file named explicitly is measured as it is: its image metrics unavailable, with the reason
    code, err = _cli(capsys, "eval", nan_run, "--checkpoint", newest, "--data", tmp_path / "in", "--no-download", "--device", "cpu")
    assert code == 0, err
    swd = json.loads((nan_run / "metrics.json").read_text())["metrics"]["swd"]
    assert swd["available"] is False and "NaN/Inf" in swd["reason"]


@pytest.mark.parametrize("command", ["colorize", "export"])
def test_a_nan_file_named_explicitly_is_refused_in_one_line(nan_run, tmp_path, capsys, command):
    _image(tmp_path / "in" / "a.png")
    newest = checkpoint_files(nan_run)[0]
    best = ["--checkpoint", "best"]
    if command == "colorize":
        cases = [[newest, tmp_path / "in", "--out", tmp_path / "o1"], [nan_run, tmp_path / "in", "--out", tmp_path / "o2", *best]]
    else:
        cases = [[newest, "--out", tmp_path / "m1.pt"], [nan_run, "--out", tmp_path / "m2.pt", *best]]
    for args in cases:
        code, err = _cli(capsys, command, *args, *(["--device", "cpu"] if command != "export" else []))
        line = _one_line(err)
        assert code != 0 and "NaN or Inf" in line, err
        assert (newest.name in line) or ("best.pt" in line)
    assert not list(tmp_path.glob("o*/*.png")) and not list(tmp_path.glob("m*.pt"))


# --- temporaries a kill left ---------------------------------------------------------------------
def test_a_completed_resume_removes_the_temporaries_a_kill_left(tmp_path, capsys):
    from conftest import write_images

    data = write_images(tmp_path / "data", 4)
    assert main(["train", "--data", str(data), *TINY, "--steps", "2", "--save-every", "2", "--eval-every", "2",
                 "--out", str(tmp_path / "runs")]) == 0
    run = only_run(tmp_path / "runs")
    left = [run / "checkpoints" / ".best.pt.deadbeef.tmp", run / "checkpoints" / ".final.pt.0badf00d.tmp"]
    for f in left:
        f.write_bytes(b"half a file")
    code = main(["train", "--resume", str(run), "--steps", "4", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert not any(f.exists() for f in left)
    assert not list((run / "checkpoints").glob(".*.tmp")) and (run / "checkpoints" / "best.pt").is_file()
