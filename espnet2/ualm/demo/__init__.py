"""The UALM web demo (``python -m espnet2.bin.ualm_demo``).

``handlers.py``: plain functions over batches of requests, through the
``UALM`` API; ``app.py``: the Gradio page (Gradio is an optional extra,
imported only here).
"""
