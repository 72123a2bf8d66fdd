"""``ganlab colorize`` output names: sub-folders mirrored, no output ever overwritten by
another input of the same call, one warning per renamed output; paired runs name their
direction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganlab.cli import main
from ganlab.infer import output_names

from conftest import TINY, colour_image, only_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("colorize")
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(colour_image(rng, 48, 48)).save(data / f"img{i}.png")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", "--data", str(data), *TINY, "--steps", "2", "--out", str(root / "runs")]) == 0
    finally:
        torch.set_num_threads(before)
    return only_run(root / "runs")


def _image(path: Path, h: int, w: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(colour_image(np.random.default_rng(seed), h, w)).save(path)
    return path


def _colorize(capsys, *args) -> tuple[int, str]:
    code = main(["colorize", *[str(a) for a in args], "--device", "cpu"])
    return code, capsys.readouterr().err


def _outputs(folder: Path) -> dict[str, tuple[int, int]]:
    """Relative name -> (width, height) of every PNG under ``folder``."""
    return {p.relative_to(folder).as_posix(): Image.open(p).size for p in sorted(folder.rglob("*.png"))}


def test_same_base_name_in_one_folder_and_across_folders_is_never_overwritten(run, tmp_path, capsys):
    # sizes tell the outputs apart: the output keeps its input's size
    _image(tmp_path / "dup1" / "a.jpg", 20, 30)
    _image(tmp_path / "dup1" / "a.png", 22, 30)
    _image(tmp_path / "dup2" / "a.jpg", 24, 30)
    code, err = _colorize(capsys, run, tmp_path / "dup1", tmp_path / "dup2", "--out", tmp_path / "out")
    assert code == 0, err
    assert _outputs(tmp_path / "out") == {"a.png": (30, 20), "a-2.png": (30, 22), "a-3.png": (30, 24)}
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert "dup1/a.png" in warnings[0] and "a-2.png" in warnings[0]
    assert "dup2/a.jpg" in warnings[1] and "a-3.png" in warnings[1]
    assert "3 image(s)" in err
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # atomic writes


def test_two_file_arguments_with_the_same_name(run, tmp_path, capsys):
    first = _image(tmp_path / "x" / "IMG_0001.jpg", 20, 26)
    second = _image(tmp_path / "y" / "IMG_0001.jpg", 26, 20)
    code, err = _colorize(capsys, run, first, second, "--out", tmp_path / "out")
    assert code == 0, err
    assert _outputs(tmp_path / "out") == {"IMG_0001.png": (26, 20), "IMG_0001-2.png": (20, 26)}
    assert len([line for line in err.splitlines() if line.startswith("warning:")]) == 1


def test_a_folder_tree_is_mirrored_under_out(run, tmp_path, capsys):
    photos = tmp_path / "photos"
    _image(photos / "2019" / "IMG_0001.jpg", 20, 28)
    _image(photos / "2020" / "IMG_0001.jpg", 28, 20)
    _image(photos / "top.png", 16, 16)
    code, err = _colorize(capsys, run, photos, "--out", tmp_path / "out")
    assert code == 0, err
    assert _outputs(tmp_path / "out") == {"2019/IMG_0001.png": (28, 20), "2020/IMG_0001.png": (20, 28), "top.png": (16, 16)}
    assert "warning" not in err


def test_a_file_given_twice_is_written_once_and_a_rerun_replaces_its_own_outputs(run, tmp_path, capsys):
    photos = tmp_path / "photos"
    _image(photos / "a.jpg", 20, 24)
    _image(photos / "a.png", 24, 20)
    for _ in range(2):
        code, err = _colorize(capsys, run, photos, photos / "a.jpg", "--out", tmp_path / "out")
        assert code == 0, err
        assert _outputs(tmp_path / "out") == {"a.png": (24, 20), "a-2.png": (20, 24)}
        assert "2 image(s)" in err


def test_output_names_avoid_every_input_s_own_name():
    rels = [Path("a-2.png"), Path("a.jpg"), Path("a.png"), Path("A.JPG"), Path("sub/a.jpg")]
    names = output_names(rels)
    assert [n.as_posix() for n, _ in names] == ["a-2.png", "a.png", "a-3.png", "A-4.png", "sub/a.png"]
    assert [c and c.as_posix() for _, c in names] == [None, None, "a.png", "A.png", None]


@pytest.mark.parametrize("direction,arrow", [("AtoB", "A -> B"), ("BtoA", "B -> A")])
def test_a_paired_run_translates_a_single_image_in_its_direction(tmp_path, capsys, direction, arrow):
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        b = colour_image(rng, 40, 40)
        Image.fromarray(np.concatenate((255 - b, b), axis=1)).save(pairs / f"pair{i}.png")
    assert main(["train", "--data", str(pairs), "--task", "paired", "--direction", direction, *TINY,
                 "--steps", "2", "--out", str(tmp_path / "runs")]) == 0
    capsys.readouterr()
    single = _image(tmp_path / "in" / "one.png", 40, 40)
    code, err = _colorize(capsys, only_run(tmp_path / "runs"), single, "--out", tmp_path / "out")
    assert code == 0, err
    assert f"translated 1 image(s) ({arrow})" in err
    assert Image.open(tmp_path / "out" / "one.png").size == (40, 40)
