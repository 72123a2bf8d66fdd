"""ganlab: GAN-stabilisation experiments on a pix2pix trainer.

The public surface is small: :mod:`ganlab.config` (the run configuration),
:mod:`ganlab.hooks` (the Trick base class and the stack), :mod:`ganlab.stats` (``report``)
and :func:`ganlab.trainer.train`.
"""

__version__ = "0.1.0"
