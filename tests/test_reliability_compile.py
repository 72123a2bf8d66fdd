"""``--compile on`` with the adversarial-share measurement and tricks.

The measurement takes a second gradient through D with ``retain_graph``; a compiled graph
with donated buffers refuses exactly that (``torch._functorch.config.donated_buffer``: a
backward that keeps its graph may not reuse the saved tensors' memory). The fast test stands
a D in for such a graph -- its backward refuses a kept graph the way the compiled one does --
so it needs no compiler; the slow ones really compile (inductor, gcc on this CPU).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganlab.config import TrainConfig
from ganlab.stats import StatsBus
from ganlab.train.build import build_networks
from ganlab.train.step import Pix2PixStep
from ganlab.trick import StepContext
from ganlab.trick._stack import TrickStack

from conftest import TINY, only_run, write_images


class _RefusesKeptGraph(torch.autograd.Function):
    """Identity whose backward refuses retain_graph, as a compiled graph with donated buffers does."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        if torch._C._autograd._get_current_graph_task_keep_graph():
            raise RuntimeError("This backward function was compiled with non-empty donated buffers which requires "
                               "create_graph=False and retain_graph=False.")
        return g


class DonatingD(nn.Module):
    def __init__(self, D: nn.Module):
        super().__init__()
        self.D = D

    def forward(self, x):
        return self.D(_RefusesKeptGraph.apply(x))


def test_the_measuring_iteration_needs_no_kept_graph_through_the_compiled_d():
    torch.manual_seed(0)
    cfg = TrainConfig(size=32, ngf=4, ndf=4, device="cpu")
    _, G, D = build_networks(cfg, backbone=False)
    opt_g, opt_d = (torch.optim.Adam(m.parameters(), lr=2e-4, betas=(0.5, 0.999)) for m in (G, D))
    ctx = StepContext(cfg=None, G=G, D=D, opt_g=opt_g, opt_d=opt_d, rng=torch.Generator().manual_seed(1),
                      device=torch.device("cpu"), gan_mode="vanilla")
    step = Pix2PixStep(G, D, opt_g, opt_d, gan_mode="vanilla", lambda_l1=100.0, stack=TrickStack([], "vanilla"), ctx=ctx)
    step._D = DonatingD(D)  # what torch.compile(D) is to the step
    step.measure = True
    A, B = torch.randn(2, 1, 32, 32), torch.randn(2, 2, 32, 32).tanh()
    bus = StatsBus()
    with bus.activate():
        for i in range(2):
            bus.step = i
            step(lambda: (A, B))
    rows = dict(bus.flush())
    assert all(0.0 <= rows[i]["G/adv_grad_share"] <= 1.0 for i in range(2))


@pytest.mark.slow
@pytest.mark.parametrize("tricks", [[], ["--trick", "r1", "--trick", "g-ema", "--trick", "instance-noise", "--trick", "image-pool"]])
def test_train_compile_on_measures_the_adversarial_share(tmp_path, run_cli, tricks):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()  # compiled afresh in this test, not found in an earlier one's cache
    counters.clear()
    data = write_images(tmp_path / "data", 4)
    code, _, err = run_cli("train", "--data", data, *TINY, "--steps", "2", "--log-every", "1", "--compile", "on",
                           *tricks, "--out", tmp_path / "runs")
    assert code == 0, err
    assert "compiled G and D" in err
    stats = (only_run(tmp_path / "runs") / "stats.jsonl").read_text()
    assert stats.count("G/adv_grad_share") == 2
    assert counters["stats"]["unique_graphs"] >= 2  # G and D really went through the compiler (inductor, gcc)


@pytest.mark.slow
def test_bench_trainer_compile_runs(tmp_path, run_cli):
    code, out, err = run_cli("bench", "--variants", "trainer+compile", "--size", "32", "--ngf", "4", "--ndf", "4",
                             "--batch-size", "2", "--steps", "2", "--warmup", "1", "--device", "cpu")
    assert code == 0, err
    assert "trainer+compile" in out + err
