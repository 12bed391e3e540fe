"""Test fixtures: tiny random models, codecs, tokenizers and corpora.

Installed with the plugin (the tests and the ualm1 recipe's dry-run test
import them), but never imported by the library itself
(``test/espnet2/ualm/test_import_cycles.py`` checks that):

* ``tiny_model``: tiny Qwen2 / Whisper configs and checkpoint directories;
* ``tiny_codec``: a tiny X-codec checkpoint directory;
* ``tiny_text``: a tiny Hugging Face tokenizer directory;
* ``tiny_corpus``: a tiny corpus (data dirs, codes, manifests) and training
  arguments for it;
* ``tiny_pretrained``: a tiny trained experiment to pack and load.
"""
