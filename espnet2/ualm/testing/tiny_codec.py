"""Tiny randomly initialised X-codec checkpoints, for tests and CPU dry runs.

No X-codec weights can be downloaded here; a tiny ``XcodecModel`` with the
real geometry (16 kHz, hop 320, 8 x 1024 codes at 4 kbps) and the real file
format lets every stage that loads X-codec run in seconds.
"""

import torch


def save_tiny_xcodec(model_dir: str, seed: int = 0) -> str:
    """Saves a tiny random ``XcodecModel`` with ``save_pretrained``; returns the dir.

    Acoustic (DAC) and semantic (HuBERT) parts are a few thousand parameters.
    The codebooks are drawn at random: the library initialises them to zeros,
    which would make every code 0.
    """
    from transformers import XcodecConfig, XcodecModel

    config = XcodecConfig(
        acoustic_model_config=dict(
            encoder_hidden_size=4,
            decoder_hidden_size=16,
            hidden_size=8,
            downsampling_ratios=[8, 5, 4, 2],
            upsampling_ratios=[8, 5, 4, 2],
        ),
        semantic_model_config=dict(
            model_type="hubert",
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=32,
            conv_dim=(8,) * 7,
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2,
        ),
    )
    torch.manual_seed(seed)
    model = XcodecModel(config).eval()
    with torch.no_grad():
        for quantizer in model.quantizer.quantizers:
            quantizer.codebook.embed.normal_()
    model.save_pretrained(model_dir)
    return model_dir
