"""UALM inference: batched generation of text and audio replies.

``UALMGenerator(model, tokenizer, frame_rate).generate(prompts, config)``
returns, for each prompt, the reply's segments (text or ``[T, K]`` codec
codes) and its raw frames; ``beam_search`` decodes one text segment.
"""

from espnet2.ualm.inference.beam import beam_search_text
from espnet2.ualm.inference.decoder import (
    Decoder,
    PromptBatch,
    batch_prompts,
    unconditional_ids,
)
from espnet2.ualm.inference.generate import (
    GenerationConfig,
    UALMGenerator,
    generate_reply,
)
from espnet2.ualm.inference.results import GeneratedSegment, GenerationResult
from espnet2.ualm.inference.sampling import (
    GREEDY,
    RELEASE_AUDIO_SAMPLING,
    SamplingConfig,
    guide,
    sample,
    top_k_filter,
    top_p_filter,
)

__all__ = [
    "GREEDY",
    "RELEASE_AUDIO_SAMPLING",
    "Decoder",
    "GeneratedSegment",
    "GenerationConfig",
    "GenerationResult",
    "PromptBatch",
    "SamplingConfig",
    "UALMGenerator",
    "batch_prompts",
    "beam_search_text",
    "generate_reply",
    "guide",
    "sample",
    "top_k_filter",
    "top_p_filter",
    "unconditional_ids",
]
