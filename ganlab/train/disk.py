"""How many bytes a run keeps on disk: one full step checkpoint and one weights-only file
(``best.pt``, ``final.pt``), before any work, for the study runner's disk budget.

The networks are built on PyTorch's ``meta`` device (shapes and dtypes only, no memory), as
:mod:`ganlab.train.memory` does. A stand-in of each file is then written to memory with the same
structure as the real one: the same keys, the configuration, Adam's state (two moments and a
step per parameter), the RNG states at their real size, one more copy of G per copy a trick
keeps (a moving average, referenced twice: its trick's state and ``G_ema``), but each tensor
replaced by a one-element tensor of its dtype expanded to its shape. The serialiser's overhead
(the pickle, the archive's records per storage, its own files) is thus counted by the serialiser
itself, and each tensor's bytes (elements times element size) are added. What remains unknown is
each storage's alignment padding (0 to 63 bytes; they average out) and a few bytes per tensor of
the pickle (strides and storage sizes written in more bytes); a trick's own state beyond copies
of G (the image pool's images) is not counted, nor the data order's remaining permutation."""

from __future__ import annotations

import io
import json
import random

import numpy as np
import torch

from ganlab.config import TrainConfig
from ganlab.losses import L1_ONLY
from ganlab.train.build import build_networks, build_stack, make_optimizer, optim_spec
from ganlab.train.checkpoint.format import CHECKPOINT_FORMAT, weights_payload
from ganlab.train.checkpoint.rng import plain_numpy_state, plain_python_state
from ganlab.train.checkpoint.write import portable_optimizer_state

__all__ = ["checkpoint_bytes"]


class _StandIns:
    """One-element tensors of each real tensor's dtype and shape, and the bytes they leave out."""

    def __init__(self) -> None:
        self.missing = 0  # bytes of the real storages less those of the stand-ins

    def tensor(self, t: torch.Tensor) -> torch.Tensor:
        one = torch.zeros((), dtype=t.dtype)
        self.missing += t.numel() * t.element_size() - one.element_size()
        return one.expand(t.shape)

    def state(self, sd: dict) -> dict:
        return {k: self.tensor(v) for k, v in sd.items()}


def _references(sd: dict) -> dict:
    """The same storages, as new tensor objects (a second reference, as ``state_dict()`` gives)."""
    return {k: v.detach() for k, v in sd.items()}


def _serialised(payload: dict) -> int:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.tell()


def checkpoint_bytes(cfg: TrainConfig) -> tuple[int, int]:
    """(bytes of one full step checkpoint, bytes of one weights-only file) of a run of ``cfg``
    (see the module's description; measured within 1% of real files)."""
    stack = build_stack(cfg)
    with torch.device("meta"):
        _, G, D = build_networks(cfg, stack, with_d=cfg.gan_mode != L1_ONLY, backbone=False)
    stand = _StandIns()
    g_state = stand.state(G.state_dict())
    d_state = stand.state(D.state_dict()) if D is not None else {}
    ospec = stack.configure_optim(optim_spec(cfg))

    def adam(net, lr, betas) -> dict:
        params = list(net.parameters())
        opt = make_optimizer(params, lr, betas, ospec.weight_decay, torch.device("cpu"), fused=False)
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]
        state = portable_optimizer_state(opt)
        state["state"] = {i: {"step": torch.zeros((), dtype=torch.float32), "exp_avg": stand.tensor(p),
                              "exp_avg_sq": stand.tensor(p)} for i, p in enumerate(params)}
        return state

    copies: list[dict] = []  # the copies of G the tricks keep, each as its own storages
    tricks: dict = {}
    for trick in stack.tricks:
        try:
            state = dict(trick.state_dict())  # before setup: its numbers; copies of G are added below
        except Exception:
            state = {}
        for i in range(trick.g_copies()):
            copies.append(stand.state(G.state_dict()))
            state[f"copy-{i}"] = copies[-1]
        tricks[trick.name] = state
    config = json.loads(json.dumps(cfg.to_dict(), default=str))
    rng = {"torch": torch.get_rng_state(), "numpy": plain_numpy_state(np.random.RandomState(cfg.seed).get_state()),
           "python": plain_python_state(random.Random(cfg.seed).getstate()), "tricks": torch.Generator().get_state(),
           "data": {"generator": torch.Generator().get_state(), "perm": [], "epoch": 0}}
    full_payload = {"format": CHECKPOINT_FORMAT, "step": 0, "config": config, "G": g_state, "D": d_state,
                    "opt_g": adam(G, ospec.lr_g, ospec.betas_g),
                    "opt_d": adam(D, ospec.lr_d, ospec.betas_d) if D is not None else {},
                    "tricks": tricks, "rng": rng}
    if copies:
        full_payload["G_ema"] = _references(copies[0])
    full = _serialised(full_payload) + stand.missing

    stand = _StandIns()  # the weights-only file: G, and the first copy as G_ema
    g_only = stand.state(G.state_dict())
    ema = stand.state(G.state_dict()) if copies else None
    best = {"metric": cfg.best_metric, "value": 0.0, "step": 0}
    weights = _serialised(weights_payload(0, config, g_only, ema, best)) + stand.missing
    return int(full), int(weights)
