"""Scoring of UALM outputs: metric math, model adapters, answer parsing, reports.

``espnet2.bin.ualm_score`` is the command line; see its docstring.
"""
