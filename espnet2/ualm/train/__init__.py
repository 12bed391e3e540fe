"""Training-side data plumbing: multi-dataset blending and batch samplers.

``blend.py`` turns stage-5 manifests plus per-dataset weights or oversampling
factors into the example keys of one epoch; ``sampler.py`` packs those keys
into rows (best-fit decreasing) or length buckets, as ESPnet ``AbsSampler``
batches for ``SequenceIterFactory``; ``threads.py`` lets a run take more
threads when another job frees its cores.
"""
