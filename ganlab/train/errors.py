"""What stops a training run."""

from __future__ import annotations

from ganlab.errors import GanlabError

__all__ = ["Diverged"]


class Diverged(GanlabError):
    """A logged value became NaN or Inf; the run stops and records where."""

    def __init__(self, step: int, name: str, value: float):
        super().__init__(
            f"training diverged at step {step}: {name} = {value}; lower --lr, add a stabilising "
            f"--trick, or resume from an earlier checkpoint"
        )
        self.step, self.name, self.value = step, name, value
