"""Hugging Face config classes built from plain mappings, keys checked.

A ``PretrainedConfig`` keeps any keyword it does not know as an attribute, so
a typo (``num_hiden_layers: 2``) is silently ignored and the class default
(e.g. 32 layers) is built instead. :func:`build_hf_config` refuses such keys,
naming them.
"""

import dataclasses
from typing import Any, Mapping, Set, Type


def declared_config_keys(config_class: Type[Any]) -> Set[str]:
    """The fields ``config_class`` declares (its dataclass fields in
    transformers 5), those its default instance saves (``to_dict``, e.g.
    ``_name_or_path``) and their ``attribute_map`` aliases."""
    keys = set(config_class().to_dict())
    if dataclasses.is_dataclass(config_class):
        keys |= {f.name for f in dataclasses.fields(config_class)}
    return keys | set(getattr(config_class, "attribute_map", None) or {})


def build_hf_config(config_class: Type[Any], conf: Mapping[str, Any], what: str):
    """``config_class(**conf)``, refusing keys the class neither declares nor
    consumes (legacy keys such as ``torch_dtype`` or ``rope_theta`` are
    converted by the class and accepted): those it would keep unused."""
    config = config_class(**conf)
    declared = declared_config_keys(config_class)
    unknown = sorted(k for k in conf if k not in declared and k in vars(config))
    if unknown:
        raise ValueError(
            f"{what}: unknown {config_class.__name__} keys {unknown} (a typo? "
            "the class would keep them unused and build its defaults)"
        )
    return config
