"""Shared fixtures of the codec tests."""

import pytest

from espnet2.ualm.testing.tiny_codec import save_tiny_xcodec


@pytest.fixture(scope="session")
def tiny_xcodec_dir(tmp_path_factory) -> str:
    """A tiny random X-codec saved with ``save_pretrained``."""
    return save_tiny_xcodec(str(tmp_path_factory.mktemp("tiny_xcodec")))
