"""Differentiable augmentations of (condition, image) pairs, shared by ``ada`` and ``diffaugment``.

Every operation works per sample, draws its random numbers from the generator it is handed,
and is differentiable with respect to the image (indexing, sums and products only), so G gets
its gradient through an augmented fake. Geometric operations move the condition and the image
together (one transform per sample for the whole pair: D must still see which input an output
belongs to); colour operations touch the image channels only (the condition is the input G
was given, the same for the real and the fake pair, and is left as it is).
"""

from __future__ import annotations

import torch


def _uniform(n: int, like: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=rng, device=like.device, dtype=like.dtype)


def _normal(n: int, like: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    return torch.randn(n, generator=rng, device=like.device, dtype=like.dtype)


def _reflect(i: torch.Tensor, n: int) -> torch.Tensor:
    """Mirror indices outside [0, n) back inside (reflect padding without the edge repeated)."""
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = i.remainder(period)
    return torch.where(i >= n, period - i, i)


def translate(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, padding: str) -> torch.Tensor:
    """Shift each sample of ``x`` (N, C, H, W) by whole pixels (``dx``, ``dy``: (N,) integer
    tensors; positive moves the content right / down). ``padding``: ``zeros`` (what is uncovered
    is 0, DiffAugment) or ``reflect`` (mirrored, ADA)."""
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device)[None, :] - dy[:, None].to(x.device)  # (N, H) source rows
    cols = torch.arange(w, device=x.device)[None, :] - dx[:, None].to(x.device)  # (N, W) source cols
    if padding == "reflect":
        rows, cols = _reflect(rows, h), _reflect(cols, w)
        valid = None
    else:
        valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
        rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = x.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if valid is not None:
        out = out * valid[:, None].to(out.dtype)
    return out


def _join(cond: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
    return torch.cat((cond, img), 1)


def _split(both: torch.Tensor, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    return both[:, :c], both[:, c:]


# ---------------------------------------------------------------------------------------------
# DiffAugment (Zhao et al., NeurIPS 2020): color, translation, cutout
# ---------------------------------------------------------------------------------------------

DIFFAUGMENT_POLICIES = ("color,translation,cutout", "color,translation", "translation,cutout", "color,cutout",
                        "translation", "color", "cutout", "none")


def diffaugment_pair(cond: torch.Tensor, img: torch.Tensor, policy: str, rng: torch.Generator, *, chroma: bool = False,
                     translation_ratio: float = 0.125, cutout_ratio: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """DiffAugment's operations in its order (color, translation, cutout), on a pair.

    color (image channels only): brightness + U(-0.5, 0.5); saturation: the deviation from the
    mean over channels x U(0, 2); contrast: the deviation from the image's mean x U(0.5, 1.5).
    With ``chroma`` (the image channels are colourisation's a/b) the operations are what the RGB
    ones do to a/b: brightness moves L alone (the condition), so it is left out; saturation and
    contrast scale the chroma, by U(0, 2) and U(0.5, 1.5).
    translation (condition and image together): a shift of up to ``translation_ratio`` of the
    size in each direction, whole pixels, zeros where uncovered. cutout (image channels only):
    a square of ``cutout_ratio`` of the size, centred anywhere (clipped at the border), set to 0.
    """
    parts = set(policy.split(",")) - {"none"}
    n = img.shape[0]
    if "color" in parts and chroma:
        img = img * (_uniform(n, img, rng) * 2).view(n, 1, 1, 1)
        img = img * (_uniform(n, img, rng) + 0.5).view(n, 1, 1, 1)
    elif "color" in parts:
        img = img + (_uniform(n, img, rng) - 0.5).view(n, 1, 1, 1)
        mean = img.mean(1, keepdim=True)
        img = (img - mean) * (_uniform(n, img, rng) * 2).view(n, 1, 1, 1) + mean
        mean = img.mean((1, 2, 3), keepdim=True)
        img = (img - mean) * (_uniform(n, img, rng) + 0.5).view(n, 1, 1, 1) + mean
    if "translation" in parts:
        h, w = img.shape[-2:]
        sy, sx = int(h * translation_ratio + 0.5), int(w * translation_ratio + 0.5)
        dy = torch.randint(-sy, sy + 1, (n,), generator=rng, device=img.device)
        dx = torch.randint(-sx, sx + 1, (n,), generator=rng, device=img.device)
        cond, img = _split(translate(_join(cond, img), dx, dy, "zeros"), cond.shape[1])
    if "cutout" in parts:
        h, w = img.shape[-2:]
        ch, cw = int(h * cutout_ratio + 0.5), int(w * cutout_ratio + 0.5)
        oy = torch.randint(0, h + (1 - ch % 2), (n,), generator=rng, device=img.device)
        ox = torch.randint(0, w + (1 - cw % 2), (n,), generator=rng, device=img.device)
        ys = torch.arange(h, device=img.device)[None, :]
        xs = torch.arange(w, device=img.device)[None, :]
        inside_y = (ys >= (oy - ch // 2)[:, None]) & (ys < (oy - ch // 2 + ch)[:, None])
        inside_x = (xs >= (ox - cw // 2)[:, None]) & (xs < (ox - cw // 2 + cw)[:, None])
        keep = ~(inside_y[:, :, None] & inside_x[:, None, :])
        img = img * keep[:, None].to(img.dtype)
    return cond, img


# ---------------------------------------------------------------------------------------------
# ADA's pipeline, reduced for small images (Karras et al., NeurIPS 2020)
# ---------------------------------------------------------------------------------------------


def ada_pair(cond: torch.Tensor, img: torch.Tensor, p: float, rng: torch.Generator, *, chroma: bool,
             xint_max: float = 0.125, brightness_std: float = 0.2, contrast_std: float = 0.5,
             saturation_std: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """ADA's 'bgc' pipeline without its resampling operations, each applied to a sample with
    probability ``p`` (the defaults are augment.py's).

    Geometric (condition and image together): x-flip (when applied, a flip with chance 1/2, as
    ADA draws it), rotation by a multiple of 90 degrees (ditto, one of four), integer
    translation by up to ``xint_max`` of the size (reflect padding). Colour (image channels
    only): brightness + N(0, 0.2^2), contrast x 2^N(0, 0.5^2), saturation x 2^N(0, 1) of the
    deviation from grey: for RGB the mean over channels (ADA's luma axis), for the a/b channels
    of colourisation (``chroma``) the deviation from a = b = 0, i.e. the chroma itself; there
    brightness, which moves L alone (the condition), is left out, and contrast (about mid-grey,
    0) scales the chroma as it scales RGB's deviation from grey.
    """
    n, c = img.shape[0], cond.shape[1]

    def chosen() -> torch.Tensor:
        return _uniform(n, img, rng) < p

    both = _join(cond, img)
    flip = (torch.floor(_uniform(n, img, rng) * 2) > 0) & chosen()
    both = torch.where(flip.view(n, 1, 1, 1), both.flip(3), both)
    if both.shape[-1] == both.shape[-2]:
        k = torch.floor(_uniform(n, img, rng) * 4).long() * chosen().long()
        rotated = both
        for turns in (1, 2, 3):
            rotated = torch.where((k == turns).view(n, 1, 1, 1), torch.rot90(both, turns, (2, 3)), rotated)
        both = rotated
    h, w = both.shape[-2:]
    t = (_uniform(2 * n, img, rng).view(n, 2) * 2 - 1) * xint_max
    on = chosen()
    dx = torch.where(on, torch.round(t[:, 0] * w), torch.zeros_like(t[:, 0])).long()
    dy = torch.where(on, torch.round(t[:, 1] * h), torch.zeros_like(t[:, 1])).long()
    both = translate(both, dx, dy, "reflect")
    cond, img = _split(both, c)

    if not chroma:
        b = torch.where(chosen(), _normal(n, img, rng) * brightness_std, torch.zeros(n, device=img.device, dtype=img.dtype))
        img = img + b.view(n, 1, 1, 1)
    s = torch.where(chosen(), torch.exp2(_normal(n, img, rng) * contrast_std), torch.ones(n, device=img.device, dtype=img.dtype))
    img = img * s.view(n, 1, 1, 1)
    s = torch.where(chosen(), torch.exp2(_normal(n, img, rng) * saturation_std), torch.ones(n, device=img.device, dtype=img.dtype))
    grey = torch.zeros_like(img[:, :1]) if chroma else img.mean(1, keepdim=True)
    img = grey + (img - grey) * s.view(n, 1, 1, 1)
    return cond, img
