"""Separable 'valid' filtering of image batches as two matrix products.

A 1-D kernel applied along one axis of an image is a product with a banded matrix: row ``i``
holds the kernel at columns ``i .. i + k - 1``. ``B_h @ x @ B_w.T`` filters every ``(H, W)``
plane of ``x`` in both directions, the same sums of the same products as two depthwise
convolutions (``F.conv2d(..., groups=C)``), which PyTorch runs on a CPU without its fast
kernels (several times slower, in float64 most of all). The metrics filter small batches of
evaluation images, where the banded matrices are a few hundred rows.
"""

from __future__ import annotations

import functools

import torch

__all__ = ["band_matrix", "separable_valid"]


@functools.lru_cache(maxsize=32)
def _band(n: int, kernel: tuple[float, ...], dtype: torch.dtype, device: str) -> torch.Tensor:
    k = len(kernel)
    m = n - k + 1
    out = torch.zeros(m, n, dtype=dtype, device=device)
    rows = torch.arange(m, device=device)
    for j, v in enumerate(kernel):
        out[rows, rows + j] = v
    return out


def band_matrix(n: int, kernel: torch.Tensor) -> torch.Tensor:
    """The ``(n - k + 1, n)`` matrix whose product with a length-``n`` signal is its 'valid'
    correlation with ``kernel`` (length ``k``)."""
    if kernel.dim() != 1 or not 0 < kernel.numel() <= n:
        raise ValueError(f"a 1-D kernel of 1..{n} taps is needed, got shape {tuple(kernel.shape)}")
    return _band(n, tuple(kernel.tolist()), kernel.dtype, str(kernel.device))


def separable_valid(x: torch.Tensor, kernel: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
    """``x`` (..., H, W) correlated with ``kernel`` along H and along W, 'valid' positions only:
    (..., H - k + 1, W - k + 1); ``rows`` keeps only those output rows and columns (e.g.
    ``slice(None, None, 2)`` for a blur followed by subsampling, without computing the rest)."""
    kernel = kernel.to(x.dtype)
    bh = band_matrix(x.shape[-2], kernel)
    bw = band_matrix(x.shape[-1], kernel)
    if rows is not None:
        bh, bw = bh[rows], bw[rows]
    return bh @ x @ bw.T
