"""The in-loop SWD keeps the real set's side between evaluations: the same values, bit for bit."""

import torch

from ganlab.metrics import swd


def _images(seed: int, n: int = 6, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def _fresh(real, fake, **kw):
    swd._REAL.clear()
    return swd.sliced_wasserstein(real, fake, **kw)


def test_a_second_evaluation_against_the_same_real_set_gives_the_same_values(one_thread):
    real = _images(0)
    for normalize in ("real", "per_set"):
        kw = dict(seed=3, patches_per_image=16, dirs_per_repeat=8, normalize=normalize, per_level=True)
        for k in range(3):  # three generators' fakes against the one real set
            fake = _images(10 + k)
            expected = _fresh(real, fake, **kw)
            assert swd._REAL  # the real side is kept ...
            assert swd.sliced_wasserstein(real, fake, **kw) == expected  # ... and reused, to the last bit
        assert swd.sliced_wasserstein(real, real, **kw)[0] == 0.0  # a set against itself, from the cache


def test_another_real_set_or_seed_is_not_served_from_the_cache(one_thread):
    real, fake = _images(0), _images(1)
    kw = dict(patches_per_image=16, dirs_per_repeat=8)
    swd.sliced_wasserstein(real, fake, seed=0, **kw)
    other = real.clone()
    other[0] = 255 - other[0]  # one image of the six changed
    value = swd.sliced_wasserstein(other, fake, seed=0, **kw)
    assert value == _fresh(other, fake, seed=0, **kw) and value != _fresh(real, fake, seed=0, **kw)
    assert swd.sliced_wasserstein(real, fake, seed=1, **kw) == _fresh(real, fake, seed=1, **kw)
    fewer = fake[:4]  # fewer fakes: the real set is subsampled to match
    assert swd.sliced_wasserstein(real, fewer, seed=0, **kw) == _fresh(real, fewer, seed=0, **kw)


def test_the_numpy_sort_gives_the_same_distance_to_the_last_bit(monkeypatch):
    import torch

    from ganlab.metrics import swd

    gen = torch.Generator().manual_seed(3)
    real = torch.randint(0, 256, (6, 3, 32, 32), generator=gen, dtype=torch.uint8)
    fake = torch.randint(0, 256, (6, 3, 32, 32), generator=gen, dtype=torch.uint8)
    swd._REAL.clear()
    fast = (swd.sliced_wasserstein(real, fake, seed=1), swd.ab_sliced_wasserstein(real, fake, seed=1))
    swd._REAL.clear()
    monkeypatch.setattr(swd, "_sort_rows", lambda x: torch.sort(x, dim=1).values)
    plain = (swd.sliced_wasserstein(real, fake, seed=1), swd.ab_sliced_wasserstein(real, fake, seed=1))
    swd._REAL.clear()
    assert [float(v) for v in fast] == [float(v) for v in plain]
