"""Shared fixtures: a tiny trained UALM experiment and its packed directory,
for the tests of packing, loading, the Python API and the inference entry
point (built once per session, on first use)."""

import os

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    """The recipe runs (``integration``, minutes each) first: under test/run.sh's
    scheduling (``test/workers.sh``) each worker starts with one of them and
    the other tests fill in beside them."""
    items.sort(key=lambda item: item.get_closest_marker("integration") is None)


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (tiny models run faster so, and
    timings are stable); a directory's conftest makes it autouse."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def experiment(tmp_path_factory):
    from espnet2.ualm.testing.tiny_pretrained import write_tiny_experiment

    return write_tiny_experiment(str(tmp_path_factory.mktemp("tiny_exp")))


@pytest.fixture(scope="session")
def decode_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("conf") / "decode.yaml"
    path.write_text(
        "batch_size: 4\nmin_audio_seconds: 0.2\nmax_audio_seconds: 0.4\n"
        "max_text_tokens: 12\n"
        "audio_sampling: {greedy: true}\nenhancer: none\n"
    )
    return str(path)


@pytest.fixture(scope="session")
def packed_dir(experiment, decode_config, tmp_path_factory):
    from espnet2.ualm.pretrained import write_pretrained_dir

    out = os.path.join(str(tmp_path_factory.mktemp("packed")), "ualm_tiny")
    return write_pretrained_dir(
        out,
        train_config=experiment["train_config"],
        model_file=experiment["model_file"],
        text_tokenizer=experiment["text_tokenizer"],
        codec_config=experiment["codec_config"],
        codec_model_dir=experiment["codec_model_dir"],
        decode_config=decode_config,
        model_name="ualm-tiny",
    )
