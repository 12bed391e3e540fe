"""One thread per test: the tiny models are faster so, and timings stable."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield
