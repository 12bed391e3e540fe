"""apply_thread_count / ThreadCountFromFile: a run takes freed cores."""

import logging

import pytest
import torch

from espnet2.iterators.abs_iter_factory import AbsIterFactory
from espnet2.ualm.train.threads import ThreadCountFromFile, apply_thread_count


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_no_file_keeps_the_count(tmp_path, one_thread):
    assert apply_thread_count(str(tmp_path / "missing")) == 1
    assert torch.get_num_threads() == 1


def test_the_file_sets_the_count(tmp_path, one_thread, caplog):
    path = tmp_path / "threads"
    path.write_text("2\n")
    with caplog.at_level(logging.INFO):
        assert apply_thread_count(str(path)) == 2
    assert torch.get_num_threads() == 2
    assert f"{path}: intra-op threads 1 -> 2" in caplog.text


@pytest.mark.parametrize("text", ["", "two", "0", "-1", "1.5"])
def test_a_bad_file_is_reported_and_ignored(tmp_path, one_thread, caplog, text):
    path = tmp_path / "threads"
    path.write_text(text)
    assert apply_thread_count(str(path)) == 1
    assert torch.get_num_threads() == 1
    assert f"{path}: expected a positive thread count" in caplog.text


class _Epochs(AbsIterFactory):
    def __init__(self):
        self.calls = []

    def build_iter(self, epoch, shuffle=None):
        self.calls.append((epoch, shuffle, torch.get_num_threads()))
        return iter([epoch])


def test_the_wrapper_applies_the_file_before_each_epoch(tmp_path, one_thread):
    path = tmp_path / "threads"
    inner = _Epochs()
    factory = ThreadCountFromFile(inner, str(path))
    assert list(factory.build_iter(1)) == [1]
    path.write_text("2")
    assert list(factory.build_iter(2, shuffle=False)) == [2]
    assert inner.calls == [(1, None, 1), (2, False, 2)]
