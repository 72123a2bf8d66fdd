"""Odd and broken images: each one either loads as the right RGB pixels or is skipped with one
warning line that names it and says why; the skipped count is printed at the start; a run never
dies on a bad image. Every file here is made by the test itself."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import TINY, colour_image, only_run, write_images
from ganlab.data.images import BadImage, decode, find_images

RNG = np.random.default_rng(7)


def _smooth(h: int, w: int) -> np.ndarray:
    """A smooth, saturated, asymmetric colour field: JPEG keeps it close, a turn is obvious."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    chans = (0.5 + 0.45 * np.sin(2 * np.pi * (1.3 * xx + 0.4 * yy)), xx, 0.5 + 0.45 * np.cos(2 * np.pi * 0.8 * yy))
    return (np.stack(chans, -1) * 255).round().astype(np.uint8)


BASE = _smooth(40, 60)


def _png16(path: Path, arr: np.ndarray) -> None:
    """Write a 16-bit-per-channel PNG (RGB or grey) byte by byte: Pillow cannot write RGB 16-bit."""
    h, w = arr.shape[:2]
    colour_type = 2 if arr.ndim == 3 else 0
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _exif_jpeg(path: Path, arr: np.ndarray, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(arr).save(path, quality=95, exif=exif)


# name -> (writer, expectation). An expectation is ("ok", check(arr)) or ("skip", reason words).
def _odd_files(folder: Path) -> dict[str, tuple[str, object]]:
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[str, object]] = {}

    full = io.BytesIO()
    Image.fromarray(BASE).save(full, "JPEG", quality=95)
    (folder / "truncated.jpg").write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
    out["truncated.jpg"] = ("skip", "unreadable")

    (folder / "zero-bytes.png").write_bytes(b"")
    out["zero-bytes.png"] = ("skip", "empty file")

    (folder / "actually-text.png").write_text("this is a note, not a picture\n")
    out["actually-text.png"] = ("skip", "not an image")

    Image.fromarray(BASE[..., 1]).save(folder / "grey.png")
    out["grey.png"] = ("skip", "greyscale")

    alpha = np.full(BASE.shape[:2], 128, np.uint8)
    alpha[:, :10] = 0  # fully transparent strip: white after compositing
    Image.fromarray(np.dstack([BASE, alpha]), "RGBA").save(folder / "rgba.png")

    def rgba_ok(arr):
        expect = (BASE.astype(np.float64) * 128 + 255.0 * 127) / 255.0
        assert np.abs(arr[:, 10:].astype(np.float64) - expect[:, 10:]).max() <= 1.0
        assert (arr[:, :10] == 255).all()

    out["rgba.png"] = ("ok", rgba_ok)

    Image.fromarray(BASE).convert("CMYK").save(folder / "cmyk.jpg", quality=95)

    def cmyk_ok(arr):
        assert Image.open(folder / "cmyk.jpg").mode == "CMYK"
        assert arr.shape == BASE.shape
        assert np.abs(arr.astype(int) - BASE.astype(int)).mean() < 4.0

    out["cmyk.jpg"] = ("ok", cmyk_ok)

    deep = RNG.integers(0, 65536, (30, 40, 3)).astype(np.uint16)
    _png16(folder / "deep-16bit.png", deep)

    def deep_ok(arr):
        assert arr.dtype == np.uint8 and arr.shape == (30, 40, 3)
        assert np.abs(arr.astype(int) - (deep.astype(int) * 255 / 65535)).max() <= 1.0

    out["deep-16bit.png"] = ("ok", deep_ok)

    _png16(folder / "grey-16bit.png", (BASE[..., 0].astype(np.uint16) * 257))
    out["grey-16bit.png"] = ("skip", "greyscale")

    pal = Image.fromarray(BASE).convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    pal.save(folder / "palette.gif")
    pal_rgb = np.array(pal.convert("RGB"))
    out["palette.gif"] = ("ok", lambda arr: np.testing.assert_array_equal(arr, pal_rgb))

    pal_t = pal.copy()
    pal_t.info["transparency"] = int(np.array(pal)[0, 0])
    pal_t.save(folder / "palette-transparent.gif", transparency=int(np.array(pal)[0, 0]))

    def pal_t_ok(arr):
        assert arr.shape == BASE.shape
        assert (arr[0, 0] == 255).all()  # the transparent index is composited on white

    out["palette-transparent.gif"] = ("ok", pal_t_ok)

    Image.fromarray(BASE[:8, :8]).save(folder / "tiny-8x8.png")
    out["tiny-8x8.png"] = ("ok", lambda arr: np.testing.assert_array_equal(arr, BASE[:8, :8]))

    strip = np.tile(colour_image(RNG, 20, 200), (1, 50, 1))  # 10000 x 20
    Image.fromarray(strip).save(folder / "strip-10000x20.png")
    out["strip-10000x20.png"] = ("skip", "too elongated")

    _exif_jpeg(folder / "exif-rotated.jpg", BASE, orientation=6)  # stored 60x40, shown 40x60 turned clockwise

    def exif_ok(arr):
        stored = np.array(Image.open(folder / "exif-rotated.jpg").convert("RGB"))  # as stored, unturned
        assert stored.shape == (40, 60, 3) and arr.shape == (60, 40, 3)
        np.testing.assert_array_equal(arr, np.rot90(stored, k=-1))  # turned clockwise, as shown
        assert np.abs(arr.astype(int) - np.rot90(BASE, k=-1).astype(int)).mean() < 4.0

    out["exif-rotated.jpg"] = ("ok", exif_ok)

    for name in ("with spaces in the name.png", "Grüße aus Köln – café.jpg", "写真 04.png"):
        Image.fromarray(BASE).save(folder / name, quality=95)
        out[name] = ("ok", lambda arr: np.testing.assert_allclose(arr.astype(int), BASE.astype(int), atol=40))

    # A name that reads as console markup must be printed as it is, not swallowed or choked on.
    (folder / "markup[bold] name.png").write_bytes(b"\x89PNG not really")
    out["markup[bold] name.png"] = ("skip", "not an image")
    (folder / "open[").mkdir()
    (folder / "open[" / "y].png").write_bytes(b"")
    out["open[/y].png"] = ("skip", "empty file")

    # Symbolic link loops: a folder that contains itself, and two file links pointing at each other.
    (folder / "loop").mkdir()
    os.symlink("..", folder / "loop" / "back-up")
    os.symlink("ping.png", folder / "pong.png")
    os.symlink("pong.png", folder / "ping.png")
    out["ping.png"] = ("skip", "symbolic links")
    out["pong.png"] = ("skip", "symbolic links")
    return out


def _path_of(folder: Path, name: str) -> Path:
    return folder / name


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd")
    return folder, _odd_files(folder)


def test_every_odd_file_loads_correctly_or_says_why(odd):
    folder, expected = odd
    found = {str(p.relative_to(folder)) for p in find_images(folder)}
    assert found == set(expected), found ^ set(expected)  # the link loop did not trap the walk
    for name, (what, check) in expected.items():
        path = _path_of(folder, name)
        if what == "ok":
            arr = decode(path)
            assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3, name
            check(arr)
        elif check in ("greyscale", "too elongated"):
            arr = decode(path)  # decodes; refused by the data checks below
            from ganlab.data.images import aspect_problem, is_greyscale

            assert is_greyscale(arr) if check == "greyscale" else aspect_problem(arr), name
        else:
            with pytest.raises(BadImage) as info:
                decode(path)
            assert check in str(info.value), (name, str(info.value))
            assert "\n" not in str(info.value)


def test_a_fifo_named_like_an_image_is_skipped_not_waited_on(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(BadImage, match="not a regular file"):
        decode(tmp_path / "pipe.png")


def test_a_run_on_a_folder_of_odd_files_skips_each_bad_one_with_one_line(tmp_path, run_cli):
    folder = tmp_path / "photos"
    expected = _odd_files(folder)
    write_images(folder, 4, seed=3)
    code, _, err = run_cli("train", "--data", folder, *TINY, "--steps", "2", "--out", tmp_path / "runs")
    assert code == 0, err
    assert "Traceback" not in err
    lines = err.splitlines()
    skipped = {n: w for n, (kind, w) in expected.items() if kind == "skip"}
    for name, why in skipped.items():
        hits = [line for line in lines if line.startswith("warning: skipped") and str(folder / name) in line]
        assert len(hits) == 1, (name, hits)
        assert why in hits[0], hits[0]
    for name, (kind, _) in expected.items():
        if kind == "ok":
            assert not any(str(folder / name) in line for line in lines if "skipped" in line), name
    # the count at the start, before any training
    data_line = next(i for i, line in enumerate(lines) if line.startswith("  data:"))
    assert f"{len(skipped)} skipped:" in lines[data_line]
    n_ok = sum(kind == "ok" for kind, _ in expected.values()) + 4
    train_val = lines[data_line].split(": ", 2)[2]
    n_train, n_val = int(train_val.split()[0]), int(train_val.split("/ ")[1].split()[0])
    assert n_train + n_val == n_ok
    assert data_line < next(i for i, line in enumerate(lines) if line.startswith("  nets:"))
    run = only_run(tmp_path / "runs")
    assert (run / "checkpoints" / "step-0000002.pt").is_file()


def _cfg(folder: Path, **kw):
    from ganlab.config import TrainConfig

    return TrainConfig(data=str(folder), size=32, load_size=40, ngf=4, ndf=4, batch_size=2, device="cpu", precision="fp32", **kw).validate()


def test_an_image_that_vanishes_mid_run_past_the_cache_is_reported_once_and_the_run_goes_on(tmp_path):
    from ganlab.data import build_datasets

    folder = write_images(tmp_path / "photos", 6)
    warnings: list[str] = []
    train, _ = build_datasets(_cfg(folder, cache_gb=0.0), warnings.append)  # nothing cached: decoded per draw
    assert warnings == []
    victim = train.images.items[0].path
    victim.write_bytes(b"overwritten by another program")
    for _ in range(8):
        batch = train.draw_uint8(2)
        assert batch.shape == (2, 3, 32, 32) and batch.dtype == torch_uint8()
    hits = [w for w in warnings if str(victim) in w]
    assert len(hits) == 1 and "changed during the run" in hits[0] and "not an image" in hits[0]
    for item in train.images.items:
        item.path.unlink()
    from ganlab.errors import UsageError

    with pytest.raises(UsageError, match="no training image can be read"):
        for _ in range(4):
            train.draw_uint8(2)


def test_an_image_that_breaks_between_the_check_and_the_load_is_skipped(tmp_path, monkeypatch):
    import ganlab.data as data

    folder = write_images(tmp_path / "photos", 5)
    real = data._preparer
    victim = sorted(folder.iterdir())[1]

    def preparer(*a):
        prepare = real(*a)

        def flaky(path):
            if path == victim:
                raise BadImage("unreadable (file is truncated)")
            return prepare(path)

        return flaky

    monkeypatch.setattr(data, "_preparer", preparer)
    warnings: list[str] = []
    train, val = data.build_datasets(_cfg(folder), warnings.append)
    assert len(train) + len(val) == 4
    assert [w for w in warnings if str(victim) in w] == [f"skipped {victim}: unreadable (file is truncated)"]


def torch_uint8():
    import torch

    return torch.uint8


def _seed_files() -> dict[str, bytes]:
    seeds = {}
    arr = colour_image(np.random.default_rng(1), 24, 32)
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP"):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, fmt)
        seeds[fmt] = buf.getvalue()
    return seeds


SEEDS = _seed_files()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fmt=st.sampled_from(sorted(SEEDS)),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.floats(0, 1)),
)
def test_damaged_bytes_never_raise_anything_but_bad_image(tmp_path, fmt, flips, cut):
    data = bytearray(SEEDS[fmt])
    for where, value in flips:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    path = tmp_path / f"damaged.{fmt.lower()}"
    path.write_bytes(bytes(data))
    try:
        arr = decode(path)
    except BadImage as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3 and min(arr.shape[:2]) >= 1
