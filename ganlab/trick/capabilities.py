"""The capabilities a trick provides, replaces, removes, requires or conflicts with.

A capability is a plain string, so a third-party trick may coin its own; the ones ganlab and
its tricks use are named here, and a trick refers to them by these names rather than by
their spelling. Plain Python: importing this module loads no library.
"""

from __future__ import annotations

__all__ = ["Capability"]


class Capability:
    """Names of capabilities (plain strings), with what provides each.

    ``LABEL_TARGETS``
        D is trained on per-element real/fake target tensors (``d_targets`` is called). The base
        step provides it for the label-based losses (vanilla, lsgan); a Wasserstein critic
        removes it.
    ``TARGET_VALUES``
        the values of those targets (soft labels, noisy labels). Replaced, so that two tricks
        that both set them cannot be stacked.
    ``ADVERSARIAL_LOSS``
        the adversarial loss itself (WGAN-GP's Wasserstein loss). Replaced.
    ``UPDATE_RATIO``
        how many D and G updates an iteration makes (step-ratio, n_critic). Replaced.
    ``GRADIENT_PENALTY``
        a penalty on the gradient of D with respect to its input (WGAN-GP, R1). Provided; the
        tricks that provide it conflict with it, so only one is stacked.
    ``FAKE_GRADIENT_PENALTY``
        a penalty on D's input gradient at the generated images (R2). Provided; it stacks with
        R1 (R3GAN penalises both).
    ``AUGMENTATION``
        an augmentation of everything D sees (ADA, DiffAugment). Provided; the tricks that
        provide it conflict with it, so only one is stacked.
    ``UPSAMPLING``
        the kind of G's up-sampling layers (PixelTCL). Replaced.
    ``G_AVERAGE``
        evaluation uses an average of G's weights rather than G (G-EMA). Provided.

    :meth:`gan` names the adversarial loss the run was asked for (``--gan-mode``), which the
    base step provides: ``Capability.gan("hinge")`` is ``"gan:hinge"``. ``GAN_RPGAN`` is
    ``Capability.gan("rpgan")``, the relativistic pairing loss, which WGAN-GP conflicts with.
    """

    LABEL_TARGETS = "label-targets"
    TARGET_VALUES = "target-values"
    ADVERSARIAL_LOSS = "adversarial-loss"
    UPDATE_RATIO = "update-ratio"
    GRADIENT_PENALTY = "gradient-penalty"
    FAKE_GRADIENT_PENALTY = "fake-gradient-penalty"
    AUGMENTATION = "augmentation"
    GAN_RPGAN = "gan:rpgan"
    UPSAMPLING = "upsampling"
    G_AVERAGE = "g-average"

    @staticmethod
    def gan(mode: str) -> str:
        """The capability of the base step under ``--gan-mode mode``."""
        return f"gan:{mode}"
