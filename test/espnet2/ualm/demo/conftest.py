"""Fixtures of the demo tests: the tiny packed model behind a ``DemoModel``
(loaded once per module), a short clip, and torch on one thread."""

import numpy as np
import pytest
import soundfile


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def demo_model(packed_dir, tmp_path_factory):
    from espnet2.ualm.demo.handlers import DemoModel

    return DemoModel.load(packed_dir, workdir=str(tmp_path_factory.mktemp("served")))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("audio") / "beep.wav"
    t = np.arange(8000) / 16000
    soundfile.write(str(path), 0.3 * np.sin(2 * np.pi * 440 * t), 16000)
    return str(path)
