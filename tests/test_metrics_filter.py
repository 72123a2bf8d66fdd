import pytest
import torch
import torch.nn.functional as F

from ganlab.metrics._filter import band_matrix, separable_valid


def _depthwise(x, k):
    c, n = x.shape[1], k.numel()
    x = F.conv2d(x, k.view(1, 1, n, 1).expand(c, 1, n, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, 1, n).expand(c, 1, 1, n), groups=c)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-4)])
def test_the_banded_products_are_the_depthwise_convolutions(dtype, tol):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 37, 50, generator=g, dtype=dtype) * 255
    k = torch.rand(7, generator=g, dtype=dtype)
    ref = _depthwise(x, k)
    got = separable_valid(x, k)
    assert got.shape == ref.shape == (3, 2, 31, 44)
    assert torch.allclose(got, ref, atol=tol, rtol=0)
    # every other output row and column, computed directly
    assert torch.allclose(separable_valid(x, k, slice(None, None, 2)), ref[:, :, ::2, ::2], atol=tol, rtol=0)


def test_a_band_matrix_holds_the_kernel_on_its_diagonals():
    k = torch.tensor([1.0, 2.0, 3.0])
    b = band_matrix(5, k)
    assert b.tolist() == [[1, 2, 3, 0, 0], [0, 1, 2, 3, 0], [0, 0, 1, 2, 3]]
    with pytest.raises(ValueError):
        band_matrix(2, k)
