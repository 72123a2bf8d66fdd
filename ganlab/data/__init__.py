"""Data: image folders for colourisation, aligned A|B pairs, and the built-in sample set.

Images are decoded once and kept in memory as uint8 tensors (where the set fits in
``--cache-gb``; beyond that they are decoded again when drawn). Each batch is cropped and
flipped per image on the host, stacked as uint8, moved to the training device and only there
converted to float and (for colourisation) to Lab, batched.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image

from ganlab.color import rgb_to_scaled_lab, scaled_lab_to_rgb
from ganlab.data.images import BadImage, Skipped, aspect_problem, decode, find_images, is_greyscale, size_problem
from ganlab.errors import UsageError

SAMPLE_IMAGES = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "retina.jpg",
    "color.png",
)


def sample_files() -> list[Path]:
    """The colour photographs shipped in scikit-image's data folder: the built-in sample set."""
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    return [folder / name for name in SAMPLE_IMAGES if (folder / name).is_file()]


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _resize_short(arr: np.ndarray, short: int) -> np.ndarray:
    h, w = arr.shape[:2]
    if min(h, w) == short:
        return arr
    scale = short / min(h, w)
    size = (max(short, round(w * scale)), max(short, round(h * scale)))
    return np.array(Image.fromarray(arr).resize(size, Image.BICUBIC))


def _resize_exact(arr: np.ndarray, h: int, w: int) -> np.ndarray:
    if arr.shape[:2] == (h, w):
        return arr
    return np.array(Image.fromarray(arr).resize((w, h), Image.BICUBIC))


@dataclass
class Prepared:
    """What the loader keeps per image: a uint8 (C, H, W) tensor (C = 3, or 6 for an A|B pair)."""

    path: Path
    tensor: torch.Tensor | None


class ImageSet:
    """The images of one split, decoded and prepared once (or on access past the cache budget)."""

    def __init__(self, files: list[Path], prepare: Callable[[Path], torch.Tensor], cache_bytes: float, workers: int = 4,
                 warn: Callable[[str], None] = lambda msg: None):
        self.files = list(files)
        self._prepare = prepare
        self._warn = warn
        self._gone: set = set()
        self.items: list[Prepared] = []
        used = 0.0

        def attempt(path):
            try:
                return prepare(path)
            except BadImage as exc:  # changed or removed since it was checked
                return exc

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for path, tensor in zip(self.files, pool.map(attempt, self.files)):
                if isinstance(tensor, BadImage):
                    warn(f"skipped {path}: {tensor}")
                    continue
                if used + tensor.numel() <= cache_bytes:
                    used += tensor.numel()
                    self.items.append(Prepared(path, tensor))
                else:
                    self.items.append(Prepared(path, None))
        self.cached_bytes = used

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> torch.Tensor:
        # Past the cache budget an image is decoded again on each draw. One that changed or
        # vanished since the start is reported once and the next readable image stands in for
        # it, so the run goes on.
        for j in range(len(self.items)):
            item = self.items[(i + j) % len(self.items)]
            if item.tensor is not None:
                return item.tensor
            if item.path in self._gone:
                continue
            try:
                return self._prepare(item.path)
            except BadImage as exc:
                self._gone.add(item.path)
                self._warn(f"skipped {item.path}: {exc} (it changed during the run)")
        raise UsageError("no training image can be read any more (every file changed or vanished during the run)")


def _scan(files: list[Path], task: str, skipped: Skipped, warn: Callable[[str], None]) -> list[Path]:
    """Decode every file once to check it; return the usable ones (the rest go to ``skipped``)."""
    good = []

    def check(path: Path) -> str | None:
        try:
            arr = decode(path)
        except BadImage as exc:
            return str(exc)
        if why := size_problem(arr):
            return why
        if task == "colorize" and is_greyscale(arr):
            return "greyscale (a colourisation target needs colour)"
        if task == "colorize" and (why := aspect_problem(arr)):
            return why
        if task == "paired":
            h, w = arr.shape[:2]
            if abs(w - 2 * h) > 1:
                return f"not an aligned A|B pair ({w}x{h}: the width must be twice the height)"
        return None

    with ThreadPoolExecutor(max_workers=4) as pool:
        for path, reason in zip(files, pool.map(check, files)):
            if reason is None:
                good.append(path)
            else:
                skipped.add(path, reason)
                warn(f"skipped {path}: {reason}")
    return good


class PairedImages:
    """A split for training or validation: draws batches of (condition, target) on a device."""

    def __init__(self, images: ImageSet, task: str, direction: str, size: int, skipped: Skipped):
        self.images, self.task, self.direction, self.size = images, task, direction, size
        self.skipped = skipped
        self.generator = torch.Generator().manual_seed(0)
        self.perm: list[int] = []
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.images)

    # Randomness that a checkpoint restores --------------------------------------------------------
    def seed(self, seed: int) -> None:
        self.generator.manual_seed(seed)
        self.perm, self.epoch = [], 0

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "perm": list(self.perm), "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"].cpu())
        self.perm, self.epoch = list(state["perm"]), int(state["epoch"])

    # Drawing ----------------------------------------------------------------------------------
    def next_index(self) -> int:
        if not self.perm:
            self.perm = torch.randperm(len(self.images), generator=self.generator).tolist()
            self.epoch += 1
        return self.perm.pop()

    def crop(self, img: torch.Tensor, top: int, left: int, flip: bool) -> torch.Tensor:
        s = self.size
        out = img[:, top : top + s, left : left + s]
        return out.flip(-1) if flip else out

    def draw_uint8(self, batch_size: int) -> torch.Tensor:
        """A batch of random crops and flips as uint8 (B, C, size, size) on the host."""
        crops = []
        r = torch.rand(batch_size, 3, generator=self.generator).tolist()
        for b in range(batch_size):
            img = self.images[self.next_index()]
            h, w = img.shape[-2:]
            top, left = int(r[b][0] * (h - self.size + 1)), int(r[b][1] * (w - self.size + 1))
            crops.append(self.crop(img, top, left, r[b][2] < 0.5))
        return torch.stack(crops)

    def convert(self, batch: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 crops -> (condition, target) on ``device`` in the networks' scaling."""
        return to_network_pair(self.task, self.direction, batch.to(device, non_blocking=True))

    def batches(self, batch_size: int, device: torch.device) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
        return lambda: self.convert(self.draw_uint8(batch_size), device)

    def fixed_uint8(self, n: int | None = None) -> torch.Tensor:
        """Centre crops of the first ``n`` images (all by default): the fixed validation set."""
        crops = []
        for i in range(len(self.images) if n is None else min(n, len(self.images))):
            img = self.images[i]
            h, w = img.shape[-2:]
            crops.append(self.crop(img, (h - self.size) // 2, (w - self.size) // 2, False))
        return torch.stack(crops)

    def fixed_batches(self, batch_size: int, device: torch.device, n: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The fixed validation set in batches, deterministic."""
        crops = self.fixed_uint8(n)
        for i in range(0, len(crops), batch_size):
            yield self.convert(crops[i : i + batch_size], device)


def to_network_pair(task: str, direction: str, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 crops (N, 3 or 6, H, W), on whatever device they are, -> (condition, target) in the
    networks' scaling: (L/50 - 1, ab/110) for colourisation, A and B in [-1, 1] in the run's
    direction for a paired run."""
    if task == "colorize":
        return rgb_to_scaled_lab(batch.float() / 255.0)
    x = batch.float() / 127.5 - 1.0
    a, b = x[:, :3], x[:, 3:]
    return (a, b) if direction == "AtoB" else (b, a)


def to_rgb(task: str, cond: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """A condition and a network output (or target) -> float RGB in [0, 1], (N, 3, H, W)."""
    if task == "colorize":
        return scaled_lab_to_rgb(cond, out)
    return ((out.float() + 1.0) / 2.0).clamp(0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Pairs from two folders (--data-a/--data-b): A/0001.jpg goes with B/0001.png
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilePair:
    """An A image and its B image, from two folders, paired by name."""

    a: Path
    b: Path

    def __str__(self) -> str:
        return f"{self.a} + {self.b}"


def _names(files: list[Path], root: Path) -> tuple[dict[str, Path], list[str]]:
    """Each file by its name without extension (its path under ``root``, for sub-folders); the
    names that more than one file has (``0001.jpg`` and ``0001.png``) cannot be paired."""
    by_name: dict[str, list[Path]] = {}
    for f in files:
        key = (f.relative_to(root) if root.is_dir() else Path(f.name)).with_suffix("").as_posix()
        by_name.setdefault(key, []).append(f)
    return {k: v[0] for k, v in by_name.items() if len(v) == 1}, sorted(k for k, v in by_name.items() if len(v) > 1)


def _listing(names: list[str], most: int = 8) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def pair_folders(dir_a: str, dir_b: str, flags: tuple[str, str], warn: Callable[[str], None]) -> list[FilePair]:
    """The pairs of two folders, matched by file name without extension (and sub-folder). Names
    on one side only, and names two files share on one side, are listed in one warning and
    skipped; no pair at all is one error."""
    files_a = _files_for(dir_a, flags[0], "paired")
    files_b = _files_for(dir_b, flags[1], "paired")
    a, twice_a = _names(files_a, Path(dir_a).expanduser())
    b, twice_b = _names(files_b, Path(dir_b).expanduser())
    pairs = [FilePair(a[k], b[k]) for k in sorted(set(a) & set(b))]
    only_a, only_b = sorted(set(a) - set(b) - set(twice_b)), sorted(set(b) - set(a) - set(twice_a))
    left_out = []
    if only_a:
        left_out.append(f"{len(only_a)} only in {flags[0]} {dir_a} ({_listing(only_a)})")
    if only_b:
        left_out.append(f"{len(only_b)} only in {flags[1]} {dir_b} ({_listing(only_b)})")
    twice = sorted(set(twice_a) | set(twice_b))
    if twice:
        left_out.append(f"{len(twice)} with two files of the same name on one side ({_listing(twice)})")
    if not pairs:
        raise UsageError(f"{flags[0]} {dir_a} and {flags[1]} {dir_b}: no file name is in both folders; pairs are matched "
                         "by name without extension (A/0001.jpg with B/0001.png)")
    if left_out:
        warn("skipped names without exactly one partner: " + "; ".join(left_out))
    return pairs


def _scan_pairs(pairs: list[FilePair], skipped: Skipped, warn: Callable[[str], None]) -> list[FilePair]:
    """Decode both images of every pair once; a pair with an unusable half is skipped (and
    counted), a B image of another size than its A is resized to it when prepared (one warning)."""
    good, resized = [], []

    def check(pair: FilePair) -> tuple[str | None, bool]:
        try:
            a = decode(pair.a)
        except BadImage as exc:
            return f"A image {exc}", False
        try:
            b = decode(pair.b)
        except BadImage as exc:
            return f"B image {exc}", False
        if why := size_problem(a) or aspect_problem(a):
            return why, False
        return None, a.shape[:2] != b.shape[:2]

    with ThreadPoolExecutor(max_workers=4) as pool:
        for pair, (reason, other_size) in zip(pairs, pool.map(check, pairs)):
            if reason is not None:
                skipped.add(pair, reason)
                warn(f"skipped {pair}: {reason}")
                continue
            good.append(pair)
            if other_size:
                resized.append(pair.b.name)
    if resized:
        warn(f"{len(resized)} B image(s) differ in size from their A image and are resized to it: {_listing(resized)}")
    return good


def _preparer(task: str, size: int, load_size: int) -> Callable[[Path], torch.Tensor]:
    def prepare(path: Path) -> torch.Tensor:
        if isinstance(path, FilePair):  # two files: B at A's size, both resized as one image
            a, b = decode(path.a), decode(path.b)
            b = _resize_exact(b, *a.shape[:2])
            short = load_size if load_size else max(size, min(a.shape[:2]))
            arr = np.concatenate((_resize_short(a, short), _resize_short(b, short)), axis=2)
            return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()
        arr = decode(path)
        if task == "paired":
            h, w = arr.shape[:2]
            half = w // 2
            side = load_size or max(size, h)
            a = _resize_exact(arr[:, :half], side, side)
            b = _resize_exact(arr[:, half : 2 * half], side, side)
            arr = np.concatenate((a, b), axis=2)
        else:
            short = load_size if load_size else max(size, min(arr.shape[:2]))
            arr = _resize_short(arr, short)
        return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()

    return prepare


def _files_for(path: str | None, flag: str, task: str) -> list[Path]:
    if path is None:
        if task == "paired":
            raise UsageError("--task paired needs --data PATH (a folder of aligned A|B images) or --data-a DIR --data-b DIR "
                             "(two folders, paired by file name)")
        return sample_files()
    p = Path(path).expanduser()
    if not p.exists():
        raise UsageError(f"{flag} {path}: no such file or folder; give a folder of images")
    if p.is_dir() and not os.access(p, os.R_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: folder cannot be read (permissions)")
    files = find_images(p)
    if not files:
        raise UsageError(f"{flag} {path}: no image files (jpg, png, webp, tif, bmp) found there")
    return files


def build_datasets(cfg, warn: Callable[[str], None] = lambda msg: None) -> tuple[PairedImages, PairedImages]:
    """The training and validation splits of ``cfg`` (``--data``/``--val-data``/the sample set)."""
    skipped = Skipped()
    if cfg.data_a is not None:
        train_files = _scan_pairs(pair_folders(cfg.data_a, cfg.data_b, ("--data-a", "--data-b"), warn), skipped, warn)
        if not train_files:
            raise UsageError(f"--data-a {cfg.data_a}/--data-b {cfg.data_b}: no usable pair ({skipped.summary()})")
    else:
        train_files = _scan(_files_for(cfg.data, "--data", cfg.task), cfg.task, skipped, warn)
    what = "colour images" if cfg.task == "colorize" else "aligned A|B images"
    fix = f"point --data at a folder of {what}" if cfg.task == "colorize" else (
        "each image must hold A and B side by side (the width must be twice the height), or give two folders with "
        "--data-a/--data-b, or use --task colorize")
    if not train_files:
        where = cfg.data or "the sample set"
        raise UsageError(f"--data {where}: no usable {what} ({skipped.summary()}); {fix}")
    if cfg.val_data is not None or cfg.val_data_a is not None:
        val_skipped = Skipped()
        if cfg.val_data_a is not None:
            val_files = _scan_pairs(pair_folders(cfg.val_data_a, cfg.val_data_b, ("--val-data-a", "--val-data-b"), warn),
                                    val_skipped, warn)
            if not val_files:
                raise UsageError(f"--val-data-a {cfg.val_data_a}/--val-data-b {cfg.val_data_b}: no usable pair "
                                 f"({val_skipped.summary()})")
        else:
            val_files = _scan(_files_for(cfg.val_data, "--val-data", cfg.task), cfg.task, val_skipped, warn)
        if not val_files:
            raise UsageError(f"--val-data {cfg.val_data}: no usable {what} ({val_skipped.summary()})")
        skipped.items += val_skipped.items
    elif len(train_files) == 1:
        # Warned, not refused: training on one picture is the usual first check that a setting can learn at all.
        warn(f"--data {cfg.data_label or cfg.data}: only 1 usable image, used for training and validation alike: the "
             "validation metrics say how well the run learns that picture, not how it does on others; add images or "
             "give --val-data")
        val_files = list(train_files)
    else:
        order = np.random.default_rng(cfg.seed if cfg.split_seed is None else cfg.split_seed).permutation(len(train_files))
        n_val = max(1, int(math.ceil(cfg.val_split * len(train_files))))
        n_val = min(n_val, len(train_files) - 1)
        val_idx = set(order[:n_val].tolist())
        val_files = [f for i, f in enumerate(train_files) if i in val_idx]
        train_files = [f for i, f in enumerate(train_files) if i not in val_idx]
    budget = cfg.cache_gb * 2**30
    prepare = _preparer(cfg.task, cfg.size, cfg.effective_load_size)
    train = PairedImages(ImageSet(train_files, prepare, budget, warn=warn), cfg.task, cfg.direction, cfg.size, skipped)
    val_prepare = _preparer(cfg.task, cfg.size, cfg.effective_load_size)
    val = PairedImages(ImageSet(val_files, val_prepare, budget - train.images.cached_bytes, warn=warn), cfg.task, cfg.direction, cfg.size, Skipped())
    if not len(train) or not len(val):
        raise UsageError(f"--data {cfg.data_label or 'the sample set'}: the images changed while they were read; run again")
    return train, val


__all__ = ["build_datasets", "to_rgb", "sample_files", "find_images", "decode", "BadImage", "FilePair", "PairedImages",
           "pair_folders"]
