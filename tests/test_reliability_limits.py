"""Pictures a user downloads cannot take the machine down: a picture above the pixel cap is
refused from its header before any pixel is decoded (also when the file only claims the size);
colorize works on a large picture in strips of rows, with the same pixels; out of memory names
colorize's own flags; pictures too small to measure are skipped; a one-picture folder warns."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganlab.cli import main
from ganlab.data.images import MAX_PIXELS, MIN_SIDE, BadImage, decode

from conftest import TINY, colour_image, only_run, write_images


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def claims(path: Path, w: int, h: int, rows: int = 4) -> Path:
    """A PNG whose header says w x h RGB, holding a few rows of (black) pixels: a few hundred bytes."""
    raw = zlib.compress(b"".join(b"\x00" + bytes(3 * w) for _ in range(rows)), 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + _chunk(b"IDAT", raw) + _chunk(b"IEND", b""))
    return path


def test_the_cap_is_sized_for_photographs():
    assert 150_000_000 < MAX_PIXELS < 1_600_000_000 // 4  # a 150-MP camera back passes; 1.6 GP is far off
    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS


def test_a_png_claiming_20000x20000_is_refused_as_too_large_from_its_header(tmp_path, monkeypatch):
    bomb = claims(tmp_path / "bomb.png", 20000, 20000)
    assert bomb.stat().st_size < 2000
    loads = []
    monkeypatch.setattr(Image.Image, "load", lambda self, *a: loads.append(self) or (_ for _ in ()).throw(AssertionError("decoded")))
    with pytest.raises(BadImage, match=r"too large \(20000x20000 = 400 megapixels; at most 250"):
        decode(bomb)
    assert not loads


def test_train_and_colorize_skip_the_claimed_giant_with_one_line(tmp_path, capsys):
    data = write_images(tmp_path / "data", 5)
    claims(data / "bomb.png", 20000, 20000)
    code = main(["train", "--data", str(data), *TINY, "--steps", "1", "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "bomb.png: too large (20000x20000" in err and "greyscale" not in err
    run = only_run(tmp_path / "runs")
    code = main(["colorize", str(run), str(data / "bomb.png"), str(data / "img00.png"), "--out", str(tmp_path / "out"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0 and "bomb.png: too large" in err and "Traceback" not in err, err
    assert (tmp_path / "out" / "img00.png").is_file() and not (tmp_path / "out" / "bomb.png").exists()


def test_colorize_in_strips_gives_the_same_pixels(monkeypatch):
    import ganlab.infer as infer
    from ganlab.config import TrainConfig
    from ganlab.nets import generator_stride
    from ganlab.train.build import build_networks

    torch.manual_seed(0)
    _, G, _ = build_networks(TrainConfig(size=32, ngf=4, ndf=4), with_d=False, backbone=False)
    G.eval()
    rng = np.random.default_rng(0)
    strips = []
    original = infer._colorize_in_strips
    monkeypatch.setattr(infer, "_colorize_in_strips", lambda *a: strips.append(a) or original(*a))
    for h, w, max_side in ((70, 90, 40), (53, 41, 0), (130, 75, 64)):
        rgb = colour_image(rng, h, w)
        whole = infer.colorize_array(G, rgb, generator_stride(G), max_side, "cpu")
        monkeypatch.setattr(infer, "STRIP_PIXELS", 200)  # strips of a few rows
        parts = infer.colorize_array(G, rgb, generator_stride(G), max_side, "cpu")
        monkeypatch.setattr(infer, "STRIP_PIXELS", 4_000_000)
        assert np.array_equal(whole, parts)
    assert len(strips) == 3


def test_out_of_memory_in_colorize_names_colorizes_flags(tmp_path, capsys, monkeypatch):
    import ganlab.infer as infer

    data = write_images(tmp_path / "data", 3)
    assert main(["train", "--data", str(data), *TINY, "--steps", "1", "--out", str(tmp_path / "runs")]) == 0
    capsys.readouterr()

    def oom(*a, **k):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 48000000000 bytes")

    monkeypatch.setattr(infer, "colorize_array", oom)
    code = main(["colorize", str(only_run(tmp_path / "runs")), str(data), "--out", str(tmp_path / "out"), "--device", "cpu"])
    err = capsys.readouterr().err
    line = [ln for ln in err.splitlines() if "error" in ln]
    assert code == 1 and len(line) == 1 and "--max-side" in line[0] and "--batch-size" not in line[0], err


def test_pictures_below_the_minimum_side_are_skipped_with_one_line(tmp_path, capsys):
    data = write_images(tmp_path / "data", 4)
    rng = np.random.default_rng(3)
    Image.fromarray(colour_image(rng, 1, 1)).save(data / "dot.png")
    Image.fromarray(colour_image(rng, MIN_SIDE - 1, 40)).save(data / "thin.png")
    Image.fromarray(colour_image(rng, MIN_SIDE, MIN_SIDE)).save(data / "small-ok.png")
    code = main(["train", "--data", str(data), *TINY, "--steps", "1", "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "dot.png: too small (1x1" in err and "thin.png: too small (40x7" in err and "small-ok.png" not in err


def test_a_folder_of_1x1_pictures_is_refused_not_scored_3e12(tmp_path, capsys):
    data = tmp_path / "dots"
    data.mkdir()
    rng = np.random.default_rng(4)
    for i in range(4):
        Image.fromarray(colour_image(rng, 1, 1)).save(data / f"d{i}.png")
    code = main(["train", "--data", str(data), *TINY, "--steps", "1", "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "no usable colour images" in err and "too small" in err, err


def test_a_one_picture_folder_warns_that_it_validates_on_its_training_picture(tmp_path, capsys):
    data = write_images(tmp_path / "one", 1)
    code = main(["train", "--data", str(data), *TINY, "--steps", "1", "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "only 1 usable image, used for training and validation alike" in err
