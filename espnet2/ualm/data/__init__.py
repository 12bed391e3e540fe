"""Data side of UALM: corpus converters, audio formatting, tokenization, manifests."""
