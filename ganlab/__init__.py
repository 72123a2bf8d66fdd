"""ganlab: GAN-stabilisation experiments on a pix2pix trainer.

The public surface is small: :mod:`ganlab.config` (the run configuration), :mod:`ganlab.trick`
(the Trick base class, its parameters and the stack), :mod:`ganlab.stats` (``report``),
:func:`ganlab.train.train` and :mod:`ganlab.testing` (the conformance checks for tricks).
"""

__version__ = "0.1.0"
