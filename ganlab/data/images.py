"""Finding and decoding images: every odd file either becomes an RGB uint8 array or a reason.

Handles EXIF orientation, RGBA/LA (composited on white), palette, CMYK and 16-bit images.
Greyscale content is detected by the pixels (a grey photo saved as RGB is still grey).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
GREY_TOLERANCE = 2.0  # mean |R-G|+|G-B| below this (in 8-bit levels) counts as greyscale
Image.MAX_IMAGE_PIXELS = 40_000 * 40_000  # large photographs are fine; a decompression bomb is not


class BadImage(Exception):
    """An image that cannot be used, with the reason."""


def find_images(root: str | os.PathLike) -> list[Path]:
    """Image files under ``root`` (recursively, sorted). Symbolic links to folders are not
    followed, so a link loop cannot trap the walk; links to files are kept."""
    root = Path(root)
    if root.is_file():
        return [root] if root.suffix.lower() in EXTENSIONS else []
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            if Path(name).suffix.lower() in EXTENSIONS and not name.startswith("."):
                found.append(Path(dirpath) / name)
    return found


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if img.mode == "RGB" and img.getbands() == ("R", "G", "B"):
        return img
    return img.convert("RGB")


def decode(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` to an ``(H, W, 3)`` uint8 RGB array with EXIF orientation applied."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise BadImage("empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                rgb = _to_rgb(img)
                arr = np.array(rgb, dtype=np.uint8)  # a writable copy
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise BadImage(f"unreadable ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    except Image.DecompressionBombError:
        raise BadImage("too many pixels") from None
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise BadImage(f"unexpected shape {arr.shape}")
    return arr


def is_greyscale(arr: np.ndarray) -> bool:
    a = arr[:: max(1, arr.shape[0] // 256), :: max(1, arr.shape[1] // 256)].astype(np.int16)
    spread = np.abs(a[..., 0] - a[..., 1]).mean() + np.abs(a[..., 1] - a[..., 2]).mean()
    return spread < GREY_TOLERANCE


@dataclass
class Skipped:
    """Files left out of a data set, by reason, for the one-line summary and the warnings."""

    items: list[tuple[Path, str]] = field(default_factory=list)

    def add(self, path: Path, reason: str) -> None:
        self.items.append((path, reason))

    def __len__(self) -> int:
        return len(self.items)

    def summary(self) -> str:
        if not self.items:
            return "none skipped"
        kinds: dict[str, int] = {}
        for _, reason in self.items:
            key = reason.split(" (")[0]
            kinds[key] = kinds.get(key, 0) + 1
        return f"{len(self.items)} skipped: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
