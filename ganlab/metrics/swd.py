"""Sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018, ProGAN).

For every level of a Laplacian pyramid (the full resolution down to 16 px) we draw random
7x7 neighbourhoods of the three colour channels, standardise their 147 components channel
by channel, and compare the two descriptor clouds by the sliced 1-Wasserstein distance:
project onto random unit directions, sort, and average the absolute differences of the
sorted projections. The reported number is ``1e3 x`` the mean over levels, as in the paper.

Differences from the reference implementation, on purpose:

* ``normalize="real"`` (the default) standardises *both* sets with the real set's per-channel
  mean and standard deviation. The reference (``normalize="per_set"``) standardises each set
  with its own statistics, which makes the distance blind to global colour casts and to
  uniform desaturation -- exactly the failures a colouriser has.
* Everything is drawn from one ``torch.Generator`` seeded by ``seed``, so the value is
  deterministic, and runs on the images' device. Patches are taken at the same positions in
  both sets (common random numbers), so a set against itself scores exactly 0.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ganlab.color import rgb_to_lab
from ganlab.errors import UsageError
from ganlab.metrics._filter import separable_valid
from ganlab.metrics._images import check_pair

_GAUSS_1D = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(x: torch.Tensor, gain: float = 1.0, every: int = 1) -> torch.Tensor:
    """The 5-tap binomial blur of (N, C, H, W), edges mirrored; ``every`` > 1 keeps every
    ``every``-th row and column of the result (computing only those)."""
    k = _GAUSS_1D.to(x) * gain**0.5
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")  # scipy.ndimage 'mirror' == torch 'reflect'
    return separable_valid(x, k, slice(None, None, every) if every > 1 else None)


def _pyr_down(x: torch.Tensor) -> torch.Tensor:
    return _blur(x, every=2)


def _pyr_up(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, h * 2, w * 2)
    up[:, :, ::2, ::2] = x
    return _blur(up, gain=4.0)


def laplacian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Laplacian pyramid of float images, finest level first (the last level is the Gaussian residual)."""
    pyramid = [images]
    for _ in range(1, levels):
        pyramid.append(_pyr_down(pyramid[-1]))
        pyramid[-2] = pyramid[-2] - _pyr_up(pyramid[-1])
    return pyramid


def _levels(size: int, min_res: int) -> int:
    levels, s = 1, size
    while s // 2 >= min_res and s % 2 == 0:
        s //= 2
        levels += 1
    return levels


def _positions(n: int, h: int, w: int, per_image: int, nhood: int, gen: torch.Generator):
    half = nhood // 2
    count = n * per_image
    return torch.randint(half, h - half, (count,), generator=gen), torch.randint(half, w - half, (count,), generator=gen)


def _descriptors(level: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, per_image: int, nhood: int) -> torch.Tensor:
    """The ``nhood x nhood`` patches centred at (ys, xs), ``per_image`` per image in order."""
    n = level.shape[0]
    half = nhood // 2
    img = torch.arange(n).repeat_interleave(per_image).to(level.device)
    off = torch.arange(-half, half + 1)
    rows = (ys[:, None] + off[None, :]).to(level.device)  # (count, nhood)
    cols = (xs[:, None] + off[None, :]).to(level.device)
    patches = level[img[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (count, nhood, nhood, c)
    return patches.permute(0, 3, 1, 2)


def _sort_rows(x: torch.Tensor) -> torch.Tensor:
    """Each row of ``x`` sorted. On the CPU through NumPy, whose vectorised sort (AVX-512 or AVX2
    where the CPU has them) takes a quarter of ``torch.sort``'s time on the (directions, patches)
    projections; a sort's values are exact, so the result is the same to the last bit."""
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not x.requires_grad:
        return torch.from_numpy(np.sort(x.numpy(), axis=1))
    return torch.sort(x, dim=1).values


def _sliced_w1(a: torch.Tensor | list[torch.Tensor], b: torch.Tensor, repeats: int, dirs: int,
               gen: torch.Generator, keep: list | None = None) -> torch.Tensor:
    """``a``: the real descriptors, or their sorted projections of an earlier call (``keep``
    collects them)."""
    total = b.new_zeros(())
    for r in range(repeats):
        d = torch.randn(b.shape[1], dirs, generator=gen).to(b)
        d = d / d.norm(dim=0, keepdim=True)
        # (dirs, count), contiguous along the sorted axis: much faster to sort than (count, dirs).
        pa = a[r] if isinstance(a, list) else _sort_rows((d.T @ a.T).contiguous())
        if keep is not None:
            keep.append(pa)
        pb = _sort_rows((d.T @ b.T).contiguous())
        total = total + (pa - pb).abs().mean()
    return total / repeats


# The real set's side of the last call (its pyramid descriptors' statistics and sorted
# projections), by the real images' content and every setting that shapes it: the in-loop
# evaluation compares each new generator with the same validation images and seed, so the real
# half of the work is done once per run. Kept only while it is small.
_REAL: dict = {}
_REAL_MAX_BYTES = 128 * 2**20


def _real_key(real: torch.Tensor, *settings) -> tuple:
    import hashlib

    digest = hashlib.blake2b(real.detach().cpu().contiguous().numpy().tobytes(), digest_size=16).hexdigest()
    return (digest, tuple(real.shape), str(real.dtype), str(real.device), *settings)


def sliced_wasserstein(
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    seed: int = 0,
    patches_per_image: int = 128,
    patch_size: int = 7,
    dir_repeats: int = 4,
    dirs_per_repeat: int = 128,
    min_res: int = 16,
    normalize: str = "real",
    per_level: bool = False,
    chunk: int = 64,
):
    """SWD x 1e3 between two sets of uint8 RGB images ``(N, 3, H, W)`` (mean over pyramid levels).

    With ``per_level=True`` returns ``(mean, [level_0, level_1, ...])``, finest level first.
    Deterministic for a given ``seed``. Unequal set sizes are handled by drawing the same number
    of patches from each set (``patches_per_image`` times the smaller count). Images go through
    the pyramid ``chunk`` at a time; only the patch descriptors of all images are kept.
    """
    check_pair(real, fake)
    return _swd(real, fake, "rgb", seed=seed, patches_per_image=patches_per_image, patch_size=patch_size,
                dir_repeats=dir_repeats, dirs_per_repeat=dirs_per_repeat, min_res=min_res, normalize=normalize,
                per_level=per_level, chunk=chunk)


def _ab_channels(x: torch.Tensor) -> torch.Tensor:
    return rgb_to_lab(x.float() / 255.0)[:, 1:]


# What each channel space feeds the pyramid, from uint8 RGB.
_SPACES = {"rgb": lambda x: x.float(), "ab": _ab_channels}


def ab_sliced_wasserstein(
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    seed: int = 0,
    patches_per_image: int = 128,
    patch_size: int = 7,
    dir_repeats: int = 4,
    dirs_per_repeat: int = 128,
    min_res: int = 16,
    per_level: bool = False,
    chunk: int = 64,
):
    """SWD x 1e3 of the a/b (chroma) channels alone: the same Laplacian-pyramid patches and
    sliced distance as :func:`sliced_wasserstein`, on CIE Lab a and b (98 numbers per 7x7 patch)
    instead of R, G, B, standardised with the real set's per-channel mean and deviation.

    The L channel, which a colouriser's input and output share, cannot dilute it: a cast moves
    the coarsest level, a desaturation or a constant tint removes the chroma texture of the
    finer levels, and both count. Inputs are uint8 RGB ``(N, 3, H, W)``, as everywhere."""
    check_pair(real, fake)
    return _swd(real, fake, "ab", seed=seed, patches_per_image=patches_per_image, patch_size=patch_size,
                dir_repeats=dir_repeats, dirs_per_repeat=dirs_per_repeat, min_res=min_res, normalize="real",
                per_level=per_level, chunk=chunk)


def _swd(real, fake, space, *, seed, patches_per_image, patch_size, dir_repeats, dirs_per_repeat, min_res,
         normalize, per_level, chunk):
    to_float = _SPACES[space]
    if normalize not in ("real", "per_set"):
        raise UsageError(f"normalize must be 'real' or 'per_set', got {normalize!r}")
    h, w = real.shape[2:]
    if min(h, w) < max(patch_size, min_res):
        raise UsageError(f"SWD needs images of at least {max(patch_size, min_res)} px, got {h}x{w}")
    levels = min(_levels(h, min_res), _levels(w, min_res))
    gen = torch.Generator().manual_seed(int(seed))
    n = min(real.shape[0], fake.shape[0])
    # Same count from both sets: subsample the larger set deterministically.
    sets = []
    for x in (real, fake):
        if x.shape[0] > n:
            x = x[torch.randperm(x.shape[0], generator=gen)[:n].to(x.device)]
        sets.append(x)
    # Patch positions for every level and image, drawn up front. The same positions serve both
    # sets (common random numbers): a set against itself scores exactly 0 and paired
    # comparisons are less noisy. Drawing them first keeps the value independent of ``chunk``.
    positions = [
        _positions(n, h >> lvl, w >> lvl, patches_per_image, patch_size, gen) for lvl in range(levels)
    ]
    key = _real_key(sets[0], space, seed, n, patches_per_image, patch_size, dir_repeats, dirs_per_repeat, levels)
    cached = _REAL.get(key)  # per level: (mean_r, std_r, sorted projections of each repeat)
    desc_r: list[list[torch.Tensor]] = [[] for _ in range(levels)]
    desc_f: list[list[torch.Tensor]] = [[] for _ in range(levels)]
    for i in range(0, n, chunk):
        pyr_r = laplacian_pyramid(to_float(sets[0][i : i + chunk]), levels) if cached is None else None
        pyr_f = laplacian_pyramid(to_float(sets[1][i : i + chunk]), levels)
        sl = slice(i * patches_per_image, (i + pyr_f[0].shape[0]) * patches_per_image)
        for lvl, lf in enumerate(pyr_f):
            ys, xs = positions[lvl][0][sl], positions[lvl][1][sl]
            if pyr_r is not None:
                desc_r[lvl].append(_descriptors(pyr_r[lvl], ys, xs, patches_per_image, patch_size))
            desc_f[lvl].append(_descriptors(lf, ys, xs, patches_per_image, patch_size))
    dists, kept = [], []
    for lvl in range(levels):
        df = torch.cat(desc_f[lvl])
        desc_f[lvl] = []
        if cached is None:
            dr = torch.cat(desc_r[lvl])
            desc_r[lvl] = []
            mean_r = dr.mean(dim=(0, 2, 3), keepdim=True)
            std_r = dr.std(dim=(0, 2, 3), keepdim=True, unbiased=False).clamp_min(1e-8)
            real_side: torch.Tensor | list[torch.Tensor] = ((dr - mean_r) / std_r).flatten(1)
        else:
            mean_r, std_r, real_side = cached[lvl]
        if normalize == "real":
            mean_f, std_f = mean_r, std_r
        else:
            mean_f = df.mean(dim=(0, 2, 3), keepdim=True)
            std_f = df.std(dim=(0, 2, 3), keepdim=True, unbiased=False).clamp_min(1e-8)
        df = ((df - mean_f) / std_f).flatten(1)
        sorted_r: list[torch.Tensor] = []
        dists.append(float(_sliced_w1(real_side, df, dir_repeats, dirs_per_repeat, gen, sorted_r)) * 1e3)
        kept.append((mean_r, std_r, sorted_r))
    if cached is None:
        size = sum(t.numel() * t.element_size() for _, _, ts in kept for t in ts)
        for k in [k for k in _REAL if k[4] == space]:  # one real set at a time per channel space
            del _REAL[k]
        if size <= _REAL_MAX_BYTES:
            _REAL[key] = kept
    mean = sum(dists) / len(dists)
    return (mean, dists) if per_level else mean
