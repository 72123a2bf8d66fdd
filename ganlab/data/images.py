"""Finding and decoding images: every odd file either becomes an RGB uint8 array or a reason.

Handles EXIF orientation, RGBA/LA (composited on white), palette, CMYK and 16-bit images.
Greyscale content is detected by the pixels (a grey photo saved as RGB is still grey).
"""

from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
GREY_TOLERANCE = 2.0  # mean |R-G|+|G-B| below this (in 8-bit levels) counts as greyscale
MAX_ASPECT = 8  # long side / short side beyond this is a strip, not a photograph to crop
# The largest picture decoded, read from the file's header before any pixel is: 250 megapixels.
# The largest camera sensors give 100-150 MP (Fujifilm GFX100: 11648x8736 = 102 MP; Phase One
# IQ4: 14204x10652 = 151 MP), so every photograph passes with room for stitched panoramas of that
# size; such a picture decodes to 750 MB of RGB. Pillow's own limit (1.6 GP at the time: 4.8 GB
# decoded, more in float copies) let a 1.2 MB PNG of 20000x20000 black pixels (400 MP) take 10 GB
# in training, and a 695-byte file that claims that size take 4.6 GB before failing.
MAX_PIXELS = 250_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own check, for any path that opens an image directly


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


def _exif_transpose(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a damaged EXIF block leaves the pixels as stored."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - malformed EXIF must not cost the whole image
        return img


def _reason(exc: BaseException) -> str:
    """The first line of an exception's message, without the file name it may repeat."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def decode(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` to an ``(H, W, 3)`` uint8 RGB array with EXIF orientation applied.

    Anything that goes wrong -- a missing, empty, special or truncated file, a format Pillow
    does not know, a decoder error on damaged data, too many pixels -- raises :class:`BadImage`
    with a short reason, never another exception.
    """
    path = Path(path)
    try:
        st = os.stat(path)  # follows links: a dangling link or a link loop fails here
        if not stat.S_ISREG(st.st_mode):
            raise BadImage("not a regular file")
        if st.st_size == 0:
            raise BadImage("empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                w, h = img.size  # from the header: nothing is decoded yet
                if w * h > MAX_PIXELS:
                    raise BadImage(f"too large ({w}x{h} = {w * h / 1e6:,.0f} megapixels; at most {MAX_PIXELS / 1e6:.0f}, "
                                   "well above any camera's photographs): shrink it first")
                if min(w, h) < 1:
                    raise BadImage(f"unexpected size {w}x{h}")
                img.load()
                img = _exif_transpose(img)
                rgb = _to_rgb(img)
                arr = np.array(rgb, dtype=np.uint8)  # a writable copy
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("not an image (unrecognised format)") from None
    except Image.DecompressionBombError:
        raise BadImage(f"too large (more than {MAX_PIXELS / 1e6:.0f} megapixels)") from None
    except MemoryError:
        raise BadImage("too large to decode in the memory available") from None
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data, whatever the decoder raises
        raise BadImage(f"unreadable ({_reason(exc)})") from None
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise BadImage(f"unexpected shape {arr.shape}")
    return arr


def aspect_problem(arr: np.ndarray) -> str | None:
    """Why an image is too elongated to train on, or None. Its short side is resized to the
    load size, so a 10000x20 strip would become a 143000x286 one: crops of a smeared line."""
    h, w = arr.shape[:2]
    if max(h, w) > MAX_ASPECT * min(h, w):
        return f"too elongated ({w}x{h}; at most {MAX_ASPECT}:1)"
    return None


MIN_SIDE = 8  # px: a smaller picture, resized up to the load size, is one flat colour


def size_problem(arr: np.ndarray) -> str | None:
    """Why an image is too small to train or validate on, or None. Resized up to the load size,
    a 1x1 (or 4x4) picture is a flat field whose patches have no spread at all; the validation
    SWD standardises by the real patches' spread, so a set of such images scored val/swd 3.2e12."""
    h, w = arr.shape[:2]
    if min(h, w) < MIN_SIDE:
        return f"too small ({w}x{h}; at least {MIN_SIDE} px a side: enlarged it would be one flat colour)"
    return None


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
