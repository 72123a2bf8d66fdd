"""How many bytes a run keeps on disk: one full step checkpoint and one weights-only file
(``best.pt``, ``final.pt``), before any work, for the study runner's disk budget.

The networks are built on PyTorch's ``meta`` device (shapes and dtypes only, no memory), as
:mod:`ganlab.train.memory` does. A stand-in of each file is then written to memory with the same
structure as the real one: the same keys, the configuration, Adam's state (two moments and a
step per parameter), the RNG states at their real size, one more copy of G per copy a trick
keeps (a moving average, referenced twice: its trick's state and ``G_ema``), but each tensor
replaced by a few elements of its dtype viewed with its shape (as many bytes as the real storage
modulo the archive's 64-byte alignment, so that the records are padded alike). The serialiser's
overhead (the pickle, the archive's records per storage, its own files) is thus counted by the
serialiser itself, and the bytes the stand-ins leave out are added. What remains unknown is a few
bytes per tensor of the pickle (larger strides and storage sizes take more bytes; measured: a
tiny run's files to the byte, 0.2% under with a moving average of G), a trick's own state beyond
copies of G (the image pool's images) and the data order's remaining permutation."""

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
    """Small tensors of each real tensor's dtype and shape (a few elements viewed with zero
    strides), and the bytes they leave out. Each stand-in's storage is as long as the real one's
    modulo the archive's 64-byte alignment, so that every record after the first is padded as
    in the real file."""

    ALIGNMENT = 64  # torch.save aligns each storage's bytes in its archive

    def __init__(self) -> None:
        self.missing = 0  # bytes of the real storages less those of the stand-ins

    def tensor(self, t: torch.Tensor) -> torch.Tensor:
        size = t.element_size()
        real = t.numel() * size
        elements = max(1, (real % self.ALIGNMENT or self.ALIGNMENT) // size)
        self.missing += real - elements * size
        return torch.zeros(elements, dtype=t.dtype).as_strided(tuple(t.shape), (0,) * t.dim())

    def state(self, sd: dict) -> dict:
        """A state dict's stand-in: the same class, keys and per-module metadata."""
        out = type(sd)((k, self.tensor(v)) for k, v in sd.items())
        if hasattr(sd, "_metadata"):
            out._metadata = sd._metadata
        return out


def _references(sd: dict) -> dict:
    """The same storages as new tensor objects, in a new state dict with its own metadata: a
    second ``state_dict()`` of the same module."""
    out = type(sd)((k, v.detach()) for k, v in sd.items())
    if hasattr(sd, "_metadata"):
        out._metadata = type(sd._metadata)((k, dict(v)) for k, v in sd._metadata.items())
    return out


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
