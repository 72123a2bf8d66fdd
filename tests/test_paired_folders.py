"""Paired data from two folders (--data-a/--data-b): files paired by name without extension, the
same crop and flip on both halves, one warning for the names without a partner and one for
resized B images, one error line for an empty pairing or a wrong combination of flags."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY, colour_image, only_run
from ganlab.config import TrainConfig
from ganlab.data import FilePair, build_datasets
from ganlab.errors import UsageError


def _folders(root: Path, n: int = 5, seed: int = 0, extras: bool = True) -> tuple[Path, Path]:
    """A/k.bmp-or-png with B/k.png = 255 - A (the same size), one name in a sub-folder, and, with
    ``extras``, a name only in A and a name only in B."""
    rng = np.random.default_rng(seed)
    a_dir, b_dir = root / "A", root / "B"
    for i in range(n):
        name = f"sub/{i:04d}" if i == n - 1 else f"{i:04d}"
        a = colour_image(rng, 40 + 4 * i, 48)
        for folder, img, ext in ((a_dir, a, "png" if i % 2 else "bmp"), (b_dir, 255 - a, "png")):
            path = folder / f"{name}.{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(path)
    if extras:
        Image.fromarray(colour_image(rng, 40, 40)).save(a_dir / "only-in-a.png")
        Image.fromarray(colour_image(rng, 40, 40)).save(b_dir / "only-in-b.png")
    return a_dir, b_dir


def _config(**kw) -> TrainConfig:
    return TrainConfig(task="paired", size=32, load_size=0, batch_size=2, device="cpu", **kw).validate()


def test_pairs_by_name_with_one_warning_and_the_same_crop_and_flip_on_both_halves(tmp_path):
    a_dir, b_dir = _folders(tmp_path)
    warnings: list[str] = []
    train, val = build_datasets(_config(data_a=str(a_dir), data_b=str(b_dir)), warnings.append)
    pairs = [item.path for item in train.images.items + val.images.items]
    assert len(pairs) == 5 and all(isinstance(p, FilePair) for p in pairs)
    assert {p.a.with_suffix("").name for p in pairs} == {p.b.with_suffix("").name for p in pairs}
    assert any(p.a.parent.name == "sub" and p.b.parent.name == "sub" for p in pairs)
    assert len(warnings) == 1, warnings
    assert "only-in-a" in warnings[0] and "only-in-b" in warnings[0] and "skipped" in warnings[0]
    # B = 255 - A everywhere, so every crop of every draw must keep it: the same crop and flip
    for _ in range(10):
        batch = train.draw_uint8(2)
        assert batch.shape[1:] == (6, 32, 32)
        assert torch.equal(batch[:, :3].int() + batch[:, 3:].int(), torch.full((2, 3, 32, 32), 255))
    cond, target = train.convert(train.draw_uint8(2), torch.device("cpu"))
    assert cond.shape == target.shape == (2, 3, 32, 32)


def test_a_b_image_of_another_size_is_resized_to_the_a_image(tmp_path):
    a_dir, b_dir = _folders(tmp_path, n=3, extras=False)
    big = np.asarray(Image.open(b_dir / "0000.png"))
    Image.fromarray(np.repeat(np.repeat(big, 2, 0), 2, 1)).save(b_dir / "0000.png")  # twice the size
    warnings: list[str] = []
    train, val = build_datasets(_config(data_a=str(a_dir), data_b=str(b_dir), val_split=0.4), warnings.append)
    assert len(warnings) == 1 and "resized" in warnings[0] and "0000.png" in warnings[0], warnings
    for item in train.images.items + val.images.items:
        a = np.asarray(Image.open(item.path.a))
        assert tuple(item.tensor.shape) == (6, *a.shape[:2])


def test_an_empty_pairing_and_wrong_flag_combinations_are_one_line(tmp_path, run_cli):
    a_dir, _ = _folders(tmp_path / "one", n=2, extras=False)
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(colour_image(np.random.default_rng(3), 40, 40)).save(other / "unrelated.png")
    cases = [
        (["--task", "paired", "--data-a", a_dir, "--data-b", other], "no file name is in both"),
        (["--task", "paired", "--data-a", a_dir], "give --data-b too"),
        (["--data-a", a_dir, "--data-b", other], "for --task paired"),
        (["--task", "paired", "--data", a_dir, "--data-a", a_dir, "--data-b", other], "give one of them"),
        (["--task", "paired", "--data-a", a_dir, "--data-b", a_dir, "--val-data-b", other], "give --val-data-a too"),
        (["--task", "paired", "--data-a", a_dir, "--data-b", a_dir, "--val-data", other, "--val-data-a", a_dir,
          "--val-data-b", a_dir], "give one of them"),
    ]
    for flags, needle in cases:
        code, _, err = run_cli("train", *flags, *TINY, "--steps", "1", "--out", tmp_path / "runs")
        assert code == 2 and needle in err, (flags, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()
    with pytest.raises(UsageError, match="no file name is in both"):
        build_datasets(_config(data_a=str(a_dir), data_b=str(other)))


def test_train_on_two_folders_with_validation_folders(tmp_path, run_cli, one_thread):
    a_dir, b_dir = _folders(tmp_path / "facades" / "train", n=4, extras=False)
    va, vb = _folders(tmp_path / "facades" / "val", n=2, seed=1, extras=False)
    code, _, err = run_cli("train", "--task", "paired", "--data-a", a_dir, "--data-b", b_dir, "--val-data-a", va,
                           "--val-data-b", vb, *TINY, "--steps", "2", "--eval-every", "2", "--out", tmp_path / "runs")
    assert code == 0, err
    run = only_run(tmp_path / "runs")
    assert run.name.endswith("paired-train")  # the folder that holds both
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["data_a"] == str(a_dir) and cfg["val_data_b"] == str(vb) and cfg["data"] is None
    assert "4 train / 2 val" in err
