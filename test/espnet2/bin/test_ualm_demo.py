"""The demo's entry point: localhost-only defaults, and a clear message
before any model loads when the optional gradio is missing."""

import sys

import pytest

from espnet2.bin.ualm_demo import get_parser, main


def test_defaults_serve_this_machine_only():
    args = get_parser().parse_args(["--model", "m"])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, False)
    assert get_parser().parse_args(["--model", "m", "--share", "true"]).share


def test_missing_gradio_is_a_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    with pytest.raises(SystemExit, match=r"needs gradio.*make -C tools demo"):
        main(["--model", "/nonexistent/model"])
