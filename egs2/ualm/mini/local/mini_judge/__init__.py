"""The mini judge: does a clip contain what its prompt asked for?

The mini corpus renders every clip from explicit parameters (event type, count,
pitch band, loudness, stereo position, order; ``mini_corpus.sound_events``), so
a text-to-audio output for a mini prompt can be checked objectively: estimate
those parameters from the signal (:mod:`mini_judge.analysis`), read what the
prompt asked for (:mod:`mini_judge.prompt`) and compare them
(:mod:`mini_judge.match`). ``local/judge.py`` is the command line.
"""
