"""The default quality objective of a colouriser ranks a ladder of colour errors as a person
would: the true colours best, every mild error (+5 a/b cast, 0.8 saturation) better than every
severe one (a constant tint at the data's mean a/b, 0.3 saturation, grey). RGB SWD does not
(docs/metrics.md); benchmarks/colour_ladder.py prints the ladder for every metric."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from ganlab.study.objective import DEFAULT_QUALITY, OBJECTIVES, default_objectives

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("colour_ladder", ROOT / "benchmarks" / "colour_ladder.py")
colour_ladder = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(colour_ladder)

BSDS_VAL = ROOT.parent / "shared" / "datasets" / "bsds500" / "val"


def photos(n: int = 24, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Made-up colour photographs: smooth coloured regions of varied hue and saturation, with
    luminance texture and edges, as uint8 RGB."""
    from ganlab.color import lab_to_rgb, to_uint8

    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    out = []
    for _ in range(n):
        L = 50 + 20 * torch.sin(xx * float(torch.rand(1, generator=g)) * 9 + yy * 4) + 8 * torch.randn(size, size, generator=g)
        ab = torch.zeros(2, size, size)
        for _ in range(4):  # coloured blobs on a faintly coloured ground
            cy, cx = (torch.rand(2, generator=g) * 2 - 1).tolist()
            r = 0.2 + 0.5 * float(torch.rand(1, generator=g))
            mask = (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r).float()
            colour = (torch.rand(2, generator=g) * 2 - 1) * 45
            ab = ab * (1 - mask) + colour[:, None, None] * mask
        ab = ab + 3 * torch.randn(2, size, size, generator=g)
        lab = torch.cat((L.clamp(5, 95)[None], ab))[None]
        out.append(to_uint8(lab_to_rgb(lab))[0])
    return torch.stack(out)


def test_the_default_quality_objective_of_a_colouriser_orders_the_ladder():
    table = colour_ladder.measure(photos(n=12))
    default = OBJECTIVES[DEFAULT_QUALITY["colorize"]].metric
    assert default == "val/ab_swd" and default_objectives("colorize") == ["ab_swd", "instability"]
    assert colour_ladder.orders_the_ladder(table[default]), table[default]
    # the a/b-histogram distance orders it too; SWD stays available under its own name
    assert colour_ladder.orders_the_ladder(table["val/color_hist"]), table["val/color_hist"]
    assert "val/swd" in table and OBJECTIVES["swd"].metric == "val/swd"
    assert default_objectives("paired") == ["swd", "instability"]


def test_the_ladder_check_fails_a_metric_that_prefers_a_tint():
    values = {"true": 0.0, "cast+5": 47.0, "sat0.8": 19.0, "cast+10": 88.0, "sat0.5": 40.0, "tint": 39.0,
              "sat0.3": 51.0, "grey": 67.0}  # RGB SWD on BSDS500 val at 64 px
    assert not colour_ladder.orders_the_ladder(values)
    assert colour_ladder.orders_the_ladder({**values, "tint": 60.0})
    assert not colour_ladder.orders_the_ladder({**values, "tint": 60.0, "true": 19.0})  # true must be best


def test_the_ladder_variants_are_what_they_say():
    from ganlab.color import rgb_to_lab

    real = photos(n=4)
    v = colour_ladder.ladder(real)
    lab = {k: rgb_to_lab(x.float() / 255) for k, x in v.items()}
    assert torch.equal(v["true"], real)
    assert lab["grey"][:, 1:].abs().max() < 1.5
    tint = lab["tint"][:, 1:].flatten(2)
    assert tint.std(dim=2).max() < 1.5  # one hue everywhere
    ratio = lab["sat0.3"][:, 1:].abs().mean() / lab["true"][:, 1:].abs().mean()
    assert 0.25 < float(ratio) < 0.35
    shift = (lab["cast+5"][:, 1:] - lab["true"][:, 1:]).mean(dim=(0, 2, 3))
    assert torch.allclose(shift, torch.tensor([5.0, 5.0]), atol=0.6)


@pytest.mark.slow
@pytest.mark.skipif(not BSDS_VAL.is_dir(), reason="BSDS500 val is not here")
def test_the_default_orders_the_ladder_on_bsds500_val():
    table = colour_ladder.measure(colour_ladder.load_crops(BSDS_VAL, 64, None))
    assert colour_ladder.orders_the_ladder(table["val/ab_swd"]), table["val/ab_swd"]
    assert not colour_ladder.orders_the_ladder(table["val/swd"])  # the blind spot this default removes
