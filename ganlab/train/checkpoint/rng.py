"""Every random number generator a resumed run needs, as plain data: torch's (CPU and the
training GPU's), the tricks' and the data order's as byte tensors, numpy's legacy MT19937 and
Python's as lists of numbers (the objects their ``get_state`` returns would need unpickling)."""

from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["numpy_state", "plain_numpy_state", "plain_python_state", "python_state", "rng_state", "set_rng_state"]


def plain_numpy_state(state) -> dict:
    """numpy's legacy ``(name, uint32[624], pos, has_gauss, cached_gaussian)`` as plain values."""
    name, key, pos, has_gauss, gauss = state
    return {"bit_generator": str(name), "key": [int(k) for k in key], "pos": int(pos), "has_gauss": int(has_gauss),
            "cached_gaussian": float(gauss)}


def numpy_state(plain: dict) -> tuple:
    return (str(plain["bit_generator"]), np.asarray(plain["key"], dtype=np.uint32), int(plain["pos"]),
            int(plain["has_gauss"]), float(plain["cached_gaussian"]))


def plain_python_state(state) -> dict:
    """``random.getstate()``'s ``(version, (625 ints), gauss_next)`` as plain values."""
    version, internal, gauss_next = state
    return {"version": int(version), "state": [int(x) for x in internal],
            "gauss_next": None if gauss_next is None else float(gauss_next)}


def python_state(plain: dict) -> tuple:
    return (int(plain["version"]), tuple(int(x) for x in plain["state"]), plain["gauss_next"])


def rng_state(session, train_data) -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": plain_numpy_state(np.random.get_state(legacy=True)),
        "python": plain_python_state(random.getstate()),
        "tricks": session.ctx.rng.get_state(),
        "data": train_data.state_dict(),
    }
    if session.runtime.device.type == "cuda":  # the training GPU's generator only (dropout draws)
        state["cuda"] = torch.cuda.get_rng_state(session.runtime.device)
    return state


def set_rng_state(state: dict, session, train_data) -> None:
    # Generator states must be CPU byte tensors, whatever device the checkpoint was mapped to.
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(numpy_state(state["numpy"]))
    random.setstate(python_state(state["python"]))
    session.ctx.rng.set_state(state["tricks"].cpu())
    train_data.load_state_dict(state["data"])
    cuda = state.get("cuda")
    if cuda is not None and session.runtime.device.type == "cuda":
        torch.cuda.set_rng_state(cuda.cpu(), session.runtime.device)
