"""Tricks do what their papers say under ganlab's defaults, not only in isolation.

- spectral norm bounds D's Lipschitz constant with the default ``--norm batch`` (BatchNorm after
  a normalised convolution would undo the normalisation);
- instance noise reaches G's gradient: G is trained through D on noisy fakes;
- R1's gamma means the paper's per-sample penalty for each patch logit, at every image size;
- the identity conformance check compares the logged statistics.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from ganlab import losses
from ganlab.hooks import NetSpec, Phase, Trick, build_trick, param
from ganlab.nets import build_discriminator
from ganlab.stats import report
from ganlab.testing import ConformanceError, SyntheticPairs, bare_context, build_tiny, check_identity, check_shapes, tiny_config


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass(frozen=True)
class _P:
    strength: float = param(0.0, low=0.0, high=1.0)


# --------------------------------------------------------------------------------------------
# The identity check compares the logged statistics
# --------------------------------------------------------------------------------------------


class _AltersAStat(Trick):
    """Trains exactly the baseline at strength 0, but reports one of the step's statistics."""

    name = "bad-alters-a-stat"
    Params = _P
    identity = {"strength": 0.0}

    def after_d_update(self, ctx):
        report("D/out_real", torch.tensor(self.params.strength))  # averaged into the step's own value


class _LogsExtra(Trick):
    name = "bad-logs-extra"
    Params = _P
    identity = {"strength": 0.0}

    def after_g_update(self, ctx):
        report("G/extra", self.params.strength)


class _LogsItsOwn(Trick):
    name = "own-stat"
    Params = _P
    identity = {"strength": 0.0}

    def after_g_update(self, ctx):
        report("tricks/own_stat", self.params.strength)


def test_identity_check_catches_a_trick_that_changes_only_a_logged_statistic():
    with pytest.raises(ConformanceError, match=r"bad-alters-a-stat.*stats at step 0\.D/out_real is"):
        check_identity(_AltersAStat)
    with pytest.raises(ConformanceError, match=r"bad-logs-extra.*logs \['G/extra'\], which the baseline does not"):
        check_identity(_LogsExtra)
    assert check_identity(_LogsItsOwn)  # a trick's own statistics, under tricks/, are allowed
