"""Deterministic synthetic mini-corpus for the UALM mini recipe.

Everything is generated locally from a seed (no downloads): sound-event clips with
plain and rich captions, metadata and QA dialogues; eSpeak NG speech with
transcripts; text-only instruction dialogues. See ``generate_corpus.py`` for the
command line and ``doc/data_layout.md`` for the files written.
"""

CORPUS_VERSION = "mini-corpus-v2"
