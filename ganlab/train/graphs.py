"""``--cuda-graphs``: the whole plain step (G forward, the D update, the G update, both fused Adam
steps, the statistics) captured once in a CUDA graph and replayed; for the batch-1 recipe, where
launching hundreds of small kernels costs more than running them."""

from __future__ import annotations

import warnings
from typing import Callable

import torch

from ganlab.stats import StatsBus, report

Batch = tuple[torch.Tensor, torch.Tensor]

__all__ = ["GraphedStep"]


class GraphedStep:
    """The plain pix2pix step captured in one CUDA graph (``--cuda-graphs on``).

    The first ``warmup`` iterations run eagerly on a side stream (they initialise cuDNN's
    choices and Adam's state, and they are real training steps); the next one is captured and
    every iteration from then on copies its batch into the graph's input buffers and replays.
    What the graph needs, and what this sets up:

    - Adam runs fused and ``capturable`` with its learning rate a device tensor, so the
      learning-rate schedule writes into the tensor the graph reads
      (:func:`ganlab.train.build.set_learning_rates` does);
    - the gradients are allocated inside the capture and never set to None afterwards;
    - dropout draws from the CUDA generator, which a graph advances on every replay;
    - the statistics the step reports inside the capture are gathered into one device vector
      that each replay refreshes; it is copied once per iteration and reported as usual.

    Only the plain step can be captured: a trick runs Python between the step's kernels (the
    configuration refuses ``--cuda-graphs on`` with ``--trick``). L1 pre-training runs eagerly.
    """

    def __init__(self, step, warmup: int = 3):
        self.step = step
        self.warmup = warmup
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.names: list[str] = []
        self.constants: list[tuple[str, float]] = []
        self._side: torch.cuda.Stream | None = None  # one side stream for the warm-up and the capture

    def __getattr__(self, name: str):  # G, D, ctx, generate, ... of the eager step
        return getattr(self.__dict__["step"], name)

    def pretrain(self, next_batch: Callable[[], Batch]) -> None:
        self.step.pretrain(next_batch)

    def _make_capturable(self) -> None:
        for opt in (self.step.opt_g, self.step.opt_d):
            for group in opt.param_groups:
                group["capturable"] = True
                if not isinstance(group["lr"], torch.Tensor):
                    device = group["params"][0].device
                    group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)
                for p in group["params"]:
                    # Non-fused Adam keeps its step counter on the host; a captured step needs
                    # it beside the parameter.
                    st = opt.state.get(p)
                    if st and isinstance(st.get("step"), torch.Tensor) and st["step"].device != p.device:
                        st["step"] = st["step"].to(device=p.device, dtype=torch.float32)

    def _capture(self, cond: torch.Tensor, real: torch.Tensor) -> None:
        self._make_capturable()
        self.static_cond = cond.clone(memory_format=torch.preserve_format)
        self.static_real = real.clone(memory_format=torch.preserve_format)
        self.step.opt_g.zero_grad(set_to_none=True)
        self.step.opt_d.zero_grad(set_to_none=True)
        bus = StatsBus()
        graph = torch.cuda.CUDAGraph()
        with bus.activate(), warnings.catch_warnings(), torch.cuda.device(cond.device):
            warnings.simplefilter("ignore")
            with torch.cuda.graph(graph, stream=self._side_stream(cond.device)):
                self.step(lambda: (self.static_cond, self.static_real))
                tensors, self.names, self.constants = [], [], []
                for name, values in bus.pending().items():
                    ts = [v for v in values if isinstance(v, torch.Tensor)]
                    if ts:
                        self.names.append(name)
                        tensors.append(torch.stack([t.float().reshape(()) for t in ts]).mean())
                    else:
                        self.constants.append((name, sum(values) / len(values)))
                self.static_stats = torch.stack(tensors) if tensors else torch.zeros(0, device=cond.device)
        self.graph = graph

    def _side_stream(self, device: torch.device) -> torch.cuda.Stream:
        """One side stream, on the batch's GPU, for the warm-up steps and the capture."""
        if self._side is None:
            self._side = torch.cuda.Stream(device=device)
        return self._side

    def __call__(self, next_batch: Callable[[], Batch]) -> None:
        cond, real = next_batch()
        if self.graph is None and self.calls < self.warmup:
            side = self._side_stream(cond.device)
            side.wait_stream(torch.cuda.current_stream(cond.device))
            with torch.cuda.stream(side):
                self.step(lambda: (cond, real))
            torch.cuda.current_stream(cond.device).wait_stream(side)
            self.calls += 1
            return
        if self.graph is None:
            self._capture(cond, real)
        else:
            self.static_cond.copy_(cond)
            self.static_real.copy_(real)
        self.graph.replay()
        values = self.static_stats.clone()
        for i, name in enumerate(self.names):
            report(name, values[i])
        for name, value in self.constants:
            report(name, value)
        self.calls += 1
