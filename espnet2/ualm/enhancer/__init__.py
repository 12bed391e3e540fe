"""Enhancers: codec output (16 kHz mono) -> 48 kHz stereo, picked by name.

``enhancer_choices`` lets the enhancer task and inference select
``--enhancer vae`` (the Enhancement VAE, trained with
``espnet2.bin.ualm_enhancer_train``) or ``--enhancer resample`` (plain
resampling, the mono channel copied: for users who do not want the VAE).
A trained VAE is loaded from its experiment dir with
``espnet2.tasks.ualm_enhancer.load_enhancer`` (or ``enhancer_for_inference``).
Design, recipe stage 8 and the measured mini results: ``doc/enhancer.md``.
"""

from espnet2.train.class_choices import ClassChoices
from espnet2.ualm.enhancer.abs_enhancer import AbsEnhancer, EnhancerOutput
from espnet2.ualm.enhancer.resample import ResampleEnhancer
from espnet2.ualm.enhancer.vae import EnhancementVAE

enhancer_choices = ClassChoices(
    name="enhancer",
    classes=dict(vae=EnhancementVAE, resample=ResampleEnhancer),
    type_check=AbsEnhancer,
    default="vae",
)

__all__ = [
    "AbsEnhancer",
    "EnhancementVAE",
    "EnhancerOutput",
    "ResampleEnhancer",
    "enhancer_choices",
]
