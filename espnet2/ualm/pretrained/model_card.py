"""The model card (``README.md`` with Hugging Face metadata) of a packed model."""

import os
from typing import Any, Dict, Optional

import yaml

RESULTS_HEADING = "## Results (the recipe's scoring stage)"
_USAGE = """\
```python
from espnet2.ualm import UALM

ualm = UALM.from_pretrained("{source}")  # or the path of this directory
clip = ualm.generate_audio(["a dog barks twice"])[0]       # .audio, .sample_rate
print(ualm.transcribe(["speech.wav"])[0].text)
print(ualm.caption(["clip.wav"])[0].text)
print(ualm.answer([("clip.wav", "How many times does the dog bark?")])[0].text)
```

From a shell, over an ESPnet data directory:

```sh
python -m espnet2.bin.ualm_inference --model {source} --task asr \\
    --data_dir data/test --output_dir decode/asr/test
```
"""


def _count(model) -> str:
    n = sum(p.numel() for p in model.parameters())
    return f"{n / 1e6:.1f} M"


def write_model_card(
    out_dir: str,
    model_name: str,
    model,
    train_config: Dict[str, Any],
    results: Optional[str] = None,
    enhancer: bool = False,
) -> str:
    """Writes ``out_dir/README.md``: metadata, architecture, data, usage and
    the recipe's RESULTS.md (when given)."""
    vocab = model.vocabulary
    backbone = model.backbone.config
    blend = (train_config.get("blend") or {}).get("datasets") or []
    datasets = sorted({d.get("name", "?") for d in blend})
    meta = {
        "library_name": "espnet",
        "tags": ["espnet", "audio", "audio-language-model", "ualm"],
        "license": "apache-2.0",
    }
    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False).strip(),
        "---",
        "",
        f"# {model_name}",
        "",
        "A UALM (Unified Audio Language Model) trained with the ESPnet UALM "
        "recipes: one decoder-only LM that understands audio (audio -> text), "
        "generates audio (text -> codec tokens -> waveform) and reasons across "
        "both.",
        "",
        "## Model",
        "",
        "| part | value |",
        "|---|---|",
        f"| parameters | {_count(model)} |",
        f"| backbone | {backbone.model_type}, {backbone.num_hidden_layers} layers, "
        f"width {backbone.hidden_size} |",
        f"| vocabulary | {vocab.size} ids: {vocab.text_vocab_size} text, "
        f"{vocab.n_codebooks} x {vocab.codebook_size} audio codes |",
        f"| audio encoder | {'yes' if model.audio_encoder is not None else 'none'} |",
        f"| enhancer | {'yes (48 kHz stereo output)' if enhancer else 'none'} |",
        "",
    ]
    if datasets:
        lines += ["## Training data", "", ", ".join(datasets), ""]
    # The hub id is unknown until upload: the card names the model, which
    # users replace by their repository id or the local directory.
    lines += ["## Usage", "", _USAGE.format(source=f"<owner>/{model_name}"), ""]
    path = os.path.join(out_dir, "README.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    if results:
        add_results_to_card(out_dir, results)
    return path


def add_results_to_card(out_dir: str, results: str) -> str:
    """Puts ``results`` (a RESULTS.md) into the card's results section,
    replacing an earlier one."""
    path = os.path.join(out_dir, "README.md")
    with open(path, encoding="utf-8") as f:
        card = f.read()
    card = card.split(RESULTS_HEADING)[0].rstrip() + "\n"
    with open(results, encoding="utf-8") as f:
        body = f.read().strip()
    # The card's own title is level 1: demote the results' headings one level.
    body = "\n".join(
        "#" + line if line.startswith("#") else line for line in body.splitlines()
    )
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{card}\n{RESULTS_HEADING}\n\n{body}\n")
    return path
