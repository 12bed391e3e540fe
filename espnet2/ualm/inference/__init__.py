"""UALM inference: the user-facing model and the generation engine behind it.

``from espnet2.ualm.inference import UALM`` (or ``from espnet2.ualm import
UALM``) gives the public API: ``UALM.from_pretrained(...)`` then
``generate_audio``, ``transcribe``, ``caption``, ``answer``, ``chat``,
``reflect``, ``enrich``, ``dialogue``.
The engine's parts are imported from their modules: ``generate``
(``UALMGenerator`` and its ``Conversation``: the one decode loop),
``reflect`` (self-reflection over one conversation), ``dialogue`` (the
clarifying dialogue over one conversation), ``settings``
(``DecodeSettings``), ``sampling`` (``SamplingConfig``,
``GREEDY``), ``decoder`` (``Decoder``, ``batch_prompts``), ``beam``
(``beam_search_text``), ``results`` (``GenerationResult``).
"""

from espnet2.ualm.inference.pipeline import UALM

__all__ = ["UALM"]
