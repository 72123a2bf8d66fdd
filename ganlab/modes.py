"""The adversarial loss modes by name, without torch: the configuration and ``--help`` read
them before any tensor library is loaded; :mod:`ganlab.losses` holds the terms."""

GAN_MODES = ("vanilla", "lsgan", "hinge", "wgan", "rpgan")
RELATIVISTIC_MODES = ("rpgan",)  # D is trained on the difference of paired real and fake logits
L1_ONLY = "none"  # --gan-mode none: the L1-only control, no D and no adversarial term
LABEL_MODES = ("vanilla", "lsgan")  # the modes whose D is trained towards targets (label tricks apply)
