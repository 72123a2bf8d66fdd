"""Shared fixtures: small generated image folders and a tiny training configuration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BSDS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "bsds500"

# Flags that make a run take seconds on a CPU: 32 px crops, 4-channel networks. fp32 is pinned:
# tests compare weights bit for bit, and --precision auto is bf16 on CPUs with AMX.
TINY = ["--size", "32", "--load-size", "40", "--ngf", "4", "--ndf", "4", "--batch-size", "2", "--no-progress", "--device", "cpu",
        "--precision", "fp32"]


def colour_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth, saturated colour field with some texture (not greyscale)."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    chans = []
    for _ in range(3):
        fx, fy, ph = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 2 * np.pi)
        chans.append(0.5 + 0.45 * np.sin(2 * np.pi * (fx * xx + fy * yy) + ph))
    img = np.stack(chans, -1) + rng.normal(0, 0.03, (h, w, 3))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def write_images(folder: Path, n: int, seed: int = 0, sizes=((48, 64), (64, 48), (56, 56))) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        ext = "png" if i % 2 == 0 else "jpg"
        Image.fromarray(colour_image(rng, h, w)).save(folder / f"img{i:02d}.{ext}")
    return folder


@pytest.fixture
def one_thread():
    """Torch on one intra-op thread for the test: on tiny tensors one thread is faster than two
    contending ones (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    return write_images(tmp_path / "images", 6)


@pytest.fixture
def paired_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "pairs"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        b = colour_image(rng, 40, 40)
        a = 255 - b  # a simple, learnable A -> B mapping
        Image.fromarray(np.concatenate((a, b), axis=1)).save(folder / f"pair{i}.png")
    return folder


@pytest.fixture
def run_cli(capsys):
    """Run ``ganlab ARGS`` in this process; return (exit code, stdout, stderr)."""
    from ganlab.cli import main

    def run(*args: str):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def straight_and_resumed(run_cli, tmp_path: Path, common: list, steps: int, half: int):
    """Train ``steps`` in one run (``a``), and ``half`` then a ``--resume`` to ``steps`` (``b``).
    Returns both final checkpoints, run ``b``'s folder and the resume's stderr."""
    import torch

    code, _, err = run_cli("train", *common, "--steps", str(steps), "--out", tmp_path / "a")
    assert code == 0, err
    code, _, err = run_cli("train", *common, "--steps", str(half), "--out", tmp_path / "b")
    assert code == 0, err
    run_b = only_run(tmp_path / "b")
    code, _, err = run_cli("train", "--resume", run_b, "--steps", str(steps), "--no-progress")
    assert code == 0, err
    name = f"step-{steps:07d}.pt"
    a = torch.load(only_run(tmp_path / "a") / "checkpoints" / name, weights_only=True)
    b = torch.load(run_b / "checkpoints" / name, weights_only=True)
    return a, b, run_b, err


def only_run(out_dir: Path) -> Path:
    runs = [p for p in Path(out_dir).iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def nan_loss_trick(name: str, from_step: int):
    """A test trick that poisons the generator's loss from ``from_step`` on (a diverging run)."""
    from ganlab.trick import Trick

    class NanLoss(Trick):
        def g_loss(self, terms, phase, ctx):
            if ctx.step >= from_step:
                terms = dict(terms, adv=terms["adv"] * float("nan"))
            return terms

    NanLoss.name = name
    return NanLoss


@pytest.fixture
def one_thread():
    """Tiny networks run fastest, and most reproducibly, on one CPU thread (restored afterwards)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished tiny run (4 steps, checkpoints at 2 and 4), made once per test module."""
    from ganlab.cli import main

    root = tmp_path_factory.mktemp("finished")
    folder = write_images(root / "images", 6)
    assert main(["train", "--data", str(folder), *TINY, "--steps", "4", "--save-every", "2", "--log-every", "1",
                 "--eval-every", "1000", "--out", str(root / "runs")]) == 0
    return only_run(root / "runs")


def assert_same_networks(a: dict, b: dict) -> None:
    """Two checkpoints hold bit-identical G and D weights."""
    import torch

    for net in ("G", "D"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), (net, k)


@pytest.fixture
def no_weights_here(tmp_path, monkeypatch):
    """No pretrained weights reachable (a private torch hub folder, no weight variables) and a
    private feature cache."""
    import torch

    from ganlab.metrics import inception

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setenv("GANLAB_CACHE", str(tmp_path / "cache"))
    for var in (inception.ENV_VAR, "GANLAB_LPIPS_WEIGHTS", "GANLAB_LPIPS_BACKBONE"):
        monkeypatch.delenv(var, raising=False)
