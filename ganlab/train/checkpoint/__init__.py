"""Checkpoints: everything a resumed run needs (G, D, optimisers, trick states, every RNG),
written atomically, read back with checks that name the file when it is unusable.

A checkpoint is data. Everything in it is a tensor, a number, a string, None, or a list or dict
of these (the RNG states of numpy and Python converted to such plain values), and every reader
loads it with ``torch.load(..., weights_only=True)``: opening a checkpoint, however it was
crafted, never runs code. A file that only loads by unpickling other objects is refused with one
line; a file of the previous format (``ganlab-checkpoint/1``, whose numpy RNG state was a
pickled array) is converted, when its user trusts it, by ``ganlab checkpoint upgrade FILE
--i-trust-this-file`` (:func:`upgrade_checkpoint`).

Besides the step checkpoints (``step-NNNNNNN.pt``, the newest ``KEEP_CHECKPOINTS`` kept), a run
folder may hold two weights-only files (``"kind": "weights"``: the step, the configuration, G and
its moving average where a trick keeps one; no D, optimisers or RNG states, so nothing to resume
from): ``best.pt``, the generator of the in-loop evaluation with the best value of the run's
``--best-metric`` (:func:`save_best`), and ``final.pt``, the newest step checkpoint's generator
once a finished run's step checkpoints were dropped (:func:`slim_run`).

=============  =====================================================================================
module         job
=============  =====================================================================================
``format``     the format's tag and file names, plain data, the finiteness check, weights-only payloads
``rng``        every RNG state as plain data and back
``write``      a step checkpoint's payload, written atomically (in the caller's thread or its own)
``read``       reading as data, the newest good checkpoint, restoring a resumed run
``scan``       the safety scan: the globals a pickle names, read from its opcodes, and the allow-lists
``best``       ``best.pt`` and :class:`BestSoFar`
``slim``       :func:`slim_run`: a finished run keeps ``final.pt`` and ``best.pt``
``upgrade``    converting a trusted ``ganlab-checkpoint/1`` file
=============  =====================================================================================

The disk-size model of a run's checkpoints lives beside the other cost models, in
:mod:`ganlab.train.disk` (:func:`checkpoint_bytes` is re-exported here)."""

from ganlab.train.checkpoint.best import BestSoFar, best_checkpoint, save_best
from ganlab.train.checkpoint.format import (BACKUP_SUFFIX, BEST_FILE, CHECKPOINT_FORMAT, FINAL_FILE, KEEP_CHECKPOINTS,
                                            PLAIN_DATA, PLAIN_STATE_ADVICE, PREVIOUS_FORMAT, WEIGHTS_KIND,
                                            UnsafeCheckpoint, checkpoint_files, not_plain_data, upgrade_command,
                                            weights_payload)
from ganlab.train.checkpoint.read import is_slimmed, latest_checkpoint, read_checkpoint, restore, slimmed_refusal
from ganlab.train.checkpoint.slim import slim_run
from ganlab.train.checkpoint.upgrade import upgrade_checkpoint, upgrade_targets
from ganlab.train.checkpoint.write import (checkpoint_payload, in_background, portable_optimizer_state,
                                           remove_stale_temporaries, save_checkpoint,
                                           save_checkpoint_in_background, write_checkpoint)
from ganlab.train.disk import checkpoint_bytes

__all__ = ["BACKUP_SUFFIX", "BEST_FILE", "CHECKPOINT_FORMAT", "FINAL_FILE", "KEEP_CHECKPOINTS", "PLAIN_DATA",
           "PLAIN_STATE_ADVICE", "PREVIOUS_FORMAT", "WEIGHTS_KIND", "BestSoFar", "UnsafeCheckpoint", "best_checkpoint",
           "checkpoint_bytes", "checkpoint_files", "checkpoint_payload", "in_background", "is_slimmed",
           "latest_checkpoint", "not_plain_data", "portable_optimizer_state", "read_checkpoint", "remove_stale_temporaries", "restore", "save_best",
           "save_checkpoint", "save_checkpoint_in_background", "slim_run", "slimmed_refusal", "upgrade_checkpoint",
           "upgrade_command", "upgrade_targets", "weights_payload", "write_checkpoint"]
