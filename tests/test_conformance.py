"""The shipped conformance checks, run over every registered trick, and shown to catch broken tricks."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from ganlab.trick._registry import registry

from ganlab.trick import Trick, param
from ganlab.testing import (
    ConformanceError,
    TrickConformanceTests,
    check_determinism,
    check_identity,
    check_shapes,
    check_state_round_trip,
)

TRICKS = sorted(registry())


@pytest.mark.parametrize("name", TRICKS)
def test_identity_setting_is_bit_identical_to_the_baseline(name):
    cls = registry()[name]
    ran = check_identity(name)
    assert ran == (cls.identity is not None)


@pytest.mark.parametrize("name", TRICKS)
def test_hooks_keep_shapes_and_dtypes(name):
    check_shapes(name)


@pytest.mark.parametrize("name", TRICKS)
def test_state_survives_a_round_trip(name):
    check_state_round_trip(name)


@pytest.mark.parametrize("name", TRICKS)
def test_deterministic_under_a_fixed_seed(name):
    check_determinism(name)


def test_non_default_settings():
    """Settings whose code paths the defaults do not reach."""
    check_determinism("soft-labels", {"two_sided": True})
    check_determinism("step-ratio", {"k": 2, "favour": "g"})
    check_state_round_trip("image-pool", {"size": 3})  # the pool fills and starts swapping
    check_determinism("instance-noise", {"schedule": "exponential", "anneal_steps": 2})
    check_determinism("r1", {"every": 2})
    check_shapes("wgan-gp", {"n_critic": 2, "critic_norm": "instance"})


# The template is a working trick; the suite runs on a class that no entry point names.
from ganlab.tricks._template import ExampleScale  # noqa: E402


class TestTemplateTrick(TrickConformanceTests):
    trick = ExampleScale
    params = {"scale": 0.9, "jitter": 0.05}


# --------------------------------------------------------------------------------------------
# The checks catch what they claim to catch
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _P:
    strength: float = param(0.5, low=0.0, high=1.0)


class _GlobalRng(Trick):
    """Draws from the global RNG even at its identity setting: shifts G's dropout masks."""

    name = "bad-global-rng"
    Params = _P
    identity = {"strength": 0.0}

    def d_targets(self, t_real, t_fake, ctx):
        noise = torch.rand(t_real.shape)  # not ctx.rng
        return t_real - self.params.strength * noise, t_fake


class _InPlace(Trick):
    name = "bad-in-place"
    Params = _P

    def d_targets(self, t_real, t_fake, ctx):
        t_real.mul_(1 - 0.1 * self.params.strength)
        return t_real, t_fake


class _ShapeChange(Trick):
    name = "bad-shape"
    Params = _P

    def d_inputs(self, real_pair, fake_pair, ctx):
        cond, fake = fake_pair
        return real_pair, (cond, fake[:, :1])


class _Forgetful(Trick):
    """Keeps a schedule counter but does not save it."""

    name = "bad-forgetful"
    Params = _P

    def __init__(self, params=None):
        super().__init__(params)
        self.calls = 0

    def d_targets(self, t_real, t_fake, ctx):
        self.calls += 1
        return t_real * (1 - self.params.strength / (1 + self.calls)), t_fake


class _Unseeded(Trick):
    name = "bad-unseeded"
    Params = _P

    def d_targets(self, t_real, t_fake, ctx):
        g = torch.Generator().manual_seed(torch.seed())  # a fresh seed every call
        return t_real - 0.1 * torch.rand(t_real.shape, generator=g), t_fake


def test_identity_check_catches_a_trick_using_the_global_rng():
    with pytest.raises(ConformanceError, match="bad-global-rng.*global RNG moved"):
        check_identity(_GlobalRng)


def test_shape_check_catches_in_place_changes_and_new_shapes():
    with pytest.raises(ConformanceError, match="in place"):
        check_shapes(_InPlace)
    with pytest.raises(ConformanceError, match="changed the image's shape"):
        check_shapes(_ShapeChange)


def test_round_trip_check_catches_unsaved_state():
    with pytest.raises(ConformanceError, match="round trip"):
        check_state_round_trip(_Forgetful)


def test_determinism_check_catches_unseeded_randomness():
    with pytest.raises(ConformanceError, match="fixed seed"):
        check_determinism(_Unseeded)


def test_a_class_given_to_a_check_is_registered_only_for_its_duration():
    check_determinism(_Forgetful)
    assert "bad-forgetful" not in registry()
