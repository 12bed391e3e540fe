"""UALM: Unified Audio Language Model, an ESPnet plugin.

Folders: ``codec/`` (audio <-> discrete codes), ``text/`` (text tokenizers),
``data/`` (corpus conversion, audio formatting, manifests), ``tokens/``
(vocabulary, templates, sequences), ``model/``, ``train/``, ``inference/``,
``scoring/``, ``enhancer/`` (the Enhancement VAE), ``pretrained/`` (packed
models: pack, load, hub).

``from espnet2.ualm import UALM`` gives the user-facing model
(``UALM.from_pretrained``); it is imported on first use so that the light
modules (data preparation) do not pull in the whole model stack.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "UALM":
        from espnet2.ualm.inference.pipeline import UALM

        return UALM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
