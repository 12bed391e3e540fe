"""UALM: Unified Audio Language Model, an ESPnet plugin.

Folders: ``codec/`` (audio <-> discrete codes), ``text/`` (text tokenizers),
``data/`` (corpus conversion, audio formatting, manifests).
"""

__version__ = "0.1.0"
