"""Enhancers: codec output (16 kHz mono) -> 48 kHz stereo, picked by name.

``enhancer_choices`` lets the enhancer task and inference select
``--enhancer vae`` (the Enhancement VAE, trained with
``espnet2.bin.ualm_enhancer_train``) or ``--enhancer resample`` (plain
resampling, the mono channel copied: for users who do not want the VAE).
A trained VAE is loaded from its experiment dir with
``espnet2.tasks.ualm_enhancer.load_enhancer`` (or ``enhancer_for_inference``).
Design, recipe stage 8 and the measured mini results: ``doc/enhancer.md``.
"""

from typing import Any, Mapping, Optional, Tuple

from espnet2.train.class_choices import ClassChoices
from espnet2.ualm.data.safe_io import read_yaml
from espnet2.ualm.enhancer.abs_enhancer import AbsEnhancer, EnhancerOutput
from espnet2.ualm.enhancer.resample import ResampleEnhancer
from espnet2.ualm.enhancer.vae import EnhancementVAE

enhancer_choices = ClassChoices(
    name="enhancer",
    classes=dict(vae=EnhancementVAE, resample=ResampleEnhancer),
    type_check=AbsEnhancer,
    default="vae",
)


def enhancer_sample_rates(
    name: Optional[str], conf: Optional[Mapping[str, Any]]
) -> Tuple[int, int]:
    """Input and output rates of the enhancer ``name`` with ``conf`` (default:
    ``enhancer_choices``' default), as the built enhancer reports them."""
    enhancer = enhancer_choices.get_class(name or enhancer_choices.default)(
        **(conf or {})
    )
    return enhancer.input_sample_rate, enhancer.output_sample_rate


def enhancer_config_rates(enhancer_config: str) -> Tuple[int, int]:
    """Input and output rates of the enhancer of an enhancer config file
    (its ``enhancer`` and ``enhancer_conf``, as the enhancer task reads them)."""
    conf = read_yaml(enhancer_config) or {}
    return enhancer_sample_rates(conf.get("enhancer"), conf.get("enhancer_conf"))


__all__ = [
    "AbsEnhancer",
    "EnhancementVAE",
    "EnhancerOutput",
    "ResampleEnhancer",
    "enhancer_choices",
    "enhancer_config_rates",
    "enhancer_sample_rates",
]
