"""Training: building a session, THE pix2pix step, the loop, run folders and checkpoints.

=====================  ==================================================================
module                 job
=====================  ==================================================================
``build``              the one place the trick stack, networks, optimisers and step are made
``step``               THE pix2pix update, calling the trick hooks at their named points
``loop``               ``train()``: the steps, and the hooks called after each
``hooks``              the cadence as hooks (logging, evaluation and best, checkpoints, stop
                       signal) in their stated order; ``Hook`` for one's own
``logs``               the stats bus of a run and its sinks
``result``             ``RunResult``, what ``train()`` returns
``rundir``             numbered run folders, environment and status files
``checkpoint``         a package by job: format, RNG states, writing, reading (as data only), the safety
                       scan, best.pt, slimming, upgrading
``guard``              signals that finish the step and save; the one-writer lock of a run folder
``inloop``             the in-loop evaluation and sample grids
``console``            the banner, progress bar and summary
``graphs``             ``--cuda-graphs``: the plain step captured in one CUDA graph
``distributed``        training over processes (torchrun)
``memory``, ``flops``  the cost model: will a step fit, how many FLOPs it makes;
``disk``               and how many bytes its checkpoints take
=====================  ==================================================================
"""

from ganlab.train.build import Session, build_networks, build_session, build_stack, net_spec, set_learning_rates
from ganlab.train.checkpoint import UnsafeCheckpoint, checkpoint_files, latest_checkpoint, read_checkpoint
from ganlab.errors import Diverged, Stopped
from ganlab.train.hooks import Hook, LoopState
from ganlab.train.loop import train
from ganlab.train.result import RunResult
from ganlab.train.step import Pix2PixStep

__all__ = [
    "Diverged",
    "Hook",
    "LoopState",
    "Pix2PixStep",
    "RunResult",
    "Session",
    "Stopped",
    "UnsafeCheckpoint",
    "build_networks",
    "build_session",
    "build_stack",
    "checkpoint_files",
    "latest_checkpoint",
    "net_spec",
    "read_checkpoint",
    "set_learning_rates",
    "train",
]
