"""Properties, drawn by hypothesis: the Lab round trip over random images; any trick stack drawn
from the registry is either refused with a reason or trains one step with finite losses; a
configuration survives config -> JSON -> config unchanged."""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from importlib import metadata

import numpy as np
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ganlab.color import lab_to_rgb, rgb_to_lab, rgb_to_scaled_lab, scaled_lab_to_rgb, to_uint8
from ganlab.config import GAN_MODES, TrainConfig, TrickSpec
from ganlab.errors import UsageError
from ganlab.trick._registry import ENTRY_POINT_GROUP, registry
from ganlab.trick.params import param_infos

# ---------------------------------------------------------------------------------------------
# Lab
# ---------------------------------------------------------------------------------------------

images = arrays(np.uint8, st.tuples(st.integers(1, 3), st.integers(1, 7), st.integers(1, 7), st.just(3)),
                elements=st.integers(0, 255))


@settings(max_examples=60, deadline=None)
@given(images)
def test_lab_round_trip_gives_back_every_pixel(img):
    u8 = torch.from_numpy(img).permute(0, 3, 1, 2).contiguous()
    # float64: the exact inverse
    rgb64 = u8.double() / 255.0
    assert (lab_to_rgb(rgb_to_lab(rgb64)) - rgb64).abs().max() < 1e-9
    # float32 through the networks' scaling, back to 8 bits: the very same pixels
    L, ab = rgb_to_scaled_lab(u8)
    assert L.min() >= -1.0 - 1e-5 and L.max() <= 1.0 + 1e-5 and ab.abs().max() <= 1.0
    assert torch.equal(to_uint8(scaled_lab_to_rgb(L, ab)), u8)


@settings(max_examples=30, deadline=None)
@given(images)
def test_lab_agrees_with_scikit_image_on_random_images(img):
    from skimage import color as skcolor

    ours = rgb_to_lab(torch.from_numpy(img).permute(0, 3, 1, 2).double() / 255.0).permute(0, 2, 3, 1).numpy()
    theirs = np.stack([skcolor.rgb2lab(im) for im in img])
    assert np.abs(ours - theirs).max() < 1e-3


# ---------------------------------------------------------------------------------------------
# Trick stacks
# ---------------------------------------------------------------------------------------------

# The tricks ganlab ships and any installed plugin (not the test tricks other test modules register).
SHIPPED = sorted(ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP))


def _value(info) -> st.SearchStrategy:
    if info.choices is not None:
        return st.sampled_from(list(info.choices))
    if info.type is bool:
        return st.booleans()
    low = info.low if info.low is not None else (info.search[0] if info.search else info.default)
    high = info.high if info.high is not None else (info.search[1] if info.search else info.default)
    if info.type is int:
        return st.integers(int(low), int(high))
    if info.type is float:
        return st.floats(float(low), float(high), allow_nan=False)
    return st.just(info.default)


@st.composite
def trick_stacks(draw):
    names = draw(st.lists(st.sampled_from(SHIPPED), unique=True, max_size=4))
    known = registry()
    stack = []
    for name in names:
        infos = param_infos(known[name].Params)
        chosen = draw(st.lists(st.sampled_from(infos), unique_by=lambda i: i.name, max_size=len(infos))) if infos else []
        stack.append((name, {i.key: draw(_value(i)) for i in chosen}))
    return draw(st.sampled_from(GAN_MODES)), stack


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(trick_stacks())
def test_any_trick_stack_is_refused_with_a_reason_or_trains_one_step_with_finite_losses(drawn):
    from ganlab.testing import SyntheticPairs, build_tiny, run_iterations, tiny_config
    from ganlab.train import build_stack

    gan_mode, stack = drawn
    try:
        cfg = tiny_config(stack, gan_mode=gan_mode)
        build_stack(cfg)
    except UsageError as exc:
        reason = str(exc)
        assert reason and "\n" not in reason
        assert any(f"--trick {name}" in reason for name, _ in stack), reason  # it names the trick
        event("refused")
        return
    event(f"trained {len(stack)} trick(s)")
    model = build_tiny(cfg)
    rows = run_iterations(model, SyntheticPairs(cfg), 0, 1)
    assert rows, "the step logged nothing"
    losses = {k: v for _, row in rows for k, v in row.items() if k.startswith(("D/", "G/"))}
    assert any("loss" in k or k in ("G/adv", "G/L1", "G/total") for k in losses), losses
    bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
    assert not bad, (stack, gan_mode, bad)
    for net in (model.G, model.D):
        assert all(torch.isfinite(p).all() for p in net.parameters())


# ---------------------------------------------------------------------------------------------
# Configuration round trip
# ---------------------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
plain = st.text(max_size=12)
param_values = st.one_of(plain, st.integers(-10**6, 10**6), finite, st.booleans())
trick_specs = st.builds(
    lambda name, params: TrickSpec(name, tuple(params.items())),
    st.text(min_size=1, max_size=12),
    st.dictionaries(st.text(min_size=1, max_size=8), param_values, max_size=3),
)


def _strategy(typ) -> st.SearchStrategy:
    if typing.get_origin(typ) in (typing.Union, __import__("types").UnionType):
        inner = [a for a in typing.get_args(typ) if a is not type(None)]
        return st.one_of(st.none(), _strategy(inner[0]))
    return {int: st.integers(-2**40, 2**40), float: finite, str: plain, bool: st.booleans()}[typ]


def _config_strategy() -> st.SearchStrategy:
    hints = typing.get_type_hints(TrainConfig)
    fields = {}
    for f in dataclasses.fields(TrainConfig):
        fields[f.name] = st.lists(trick_specs, max_size=3).map(tuple) if f.name == "tricks" else _strategy(hints[f.name])
    return st.fixed_dictionaries(fields).map(lambda kw: TrainConfig(**kw))


@settings(max_examples=150, deadline=None)
@given(_config_strategy())
def test_config_to_json_and_back_is_the_identity(cfg):
    text = json.dumps(cfg.to_dict())  # what config.json holds
    back = TrainConfig.from_dict(json.loads(text))
    assert back == cfg
    assert json.dumps(back.to_dict()) == text


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(SHIPPED), st.data())
def test_a_valid_config_with_tricks_survives_the_round_trip_and_still_validates(name, data):
    from ganlab.testing import tiny_config

    infos = param_infos(registry()[name].Params)
    params = {i.key: data.draw(_value(i)) for i in infos}
    try:
        cfg = tiny_config([(name, params)], gan_mode=data.draw(st.sampled_from(GAN_MODES)))
    except UsageError:
        return
    back = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))).validate()
    assert back == cfg
