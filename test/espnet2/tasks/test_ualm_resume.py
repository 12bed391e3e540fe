"""--resume: a run killed after its first checkpoint continues from it.

The first run is a real process, killed (SIGKILL) as soon as the first
epoch's checkpoint exists; the rerun with ``--resume true`` must start at the
next epoch with the saved optimizer state, not from scratch.
"""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from espnet2.train.reporter import Reporter
from espnet2.ualm.testing.tiny_corpus import (
    tiny_train_args,
    tiny_train_config,
    write_tiny_corpus,
)

MAX_EPOCH = 3


def _checkpoint(output_dir):
    states = torch.load(
        os.path.join(output_dir, "checkpoint.pth"),
        map_location="cpu",
        weights_only=False,
    )
    reporter = Reporter()
    reporter.load_state_dict(states["reporter"])
    return states, reporter


def _optimizer_steps(states) -> int:
    return max(int(s["step"]) for s in states["optimizers"][0]["state"].values())


def _run(cmd, log_path, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    log = open(log_path, "w")
    return subprocess.Popen(
        [sys.executable, "-m", "espnet2.bin.ualm_train", *cmd],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        **kwargs,
    )


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(tmp_path):
    corpus = write_tiny_corpus(str(tmp_path / "corpus"))
    config = str(tmp_path / "train.yaml")
    with open(config, "w") as f:
        # plots make each epoch last a few seconds: time to kill the run
        yaml.safe_dump(tiny_train_config(max_epoch=MAX_EPOCH), f)
    out = str(tmp_path / "exp")
    cmd = tiny_train_args(corpus, config, out)

    first = _run(cmd, tmp_path / "first.log")
    deadline = time.time() + 120
    while not os.path.exists(os.path.join(out, "1epoch.pth")):
        assert first.poll() is None, open(tmp_path / "first.log").read()[-3000:]
        assert time.time() < deadline, "no checkpoint after 120 s"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    states, reporter = _checkpoint(out)
    killed_at = reporter.get_epoch()
    assert 1 <= killed_at < MAX_EPOCH, "the run finished before it was killed"
    steps_before = reporter.get_value("train", "total_count", killed_at)
    assert _optimizer_steps(states) == steps_before
    loss_epoch1 = reporter.get_value("train", "loss", 1)

    second = _run(
        cmd + ["--resume", "true", "--use_matplotlib", "false"],
        tmp_path / "second.log",
    )
    assert second.wait(timeout=120) == 0, open(tmp_path / "second.log").read()[-3000:]
    log = open(tmp_path / "second.log").read()
    assert "The training was resumed using" in log
    assert f"{killed_at + 1}/{MAX_EPOCH}epoch started" in log
    assert f"1/{MAX_EPOCH}epoch started" not in log

    states, reporter = _checkpoint(out)
    assert reporter.get_epoch() == MAX_EPOCH
    # epoch 1 is the killed run's, not a retrained one
    assert reporter.get_value("train", "loss", 1) == loss_epoch1
    # the optimizer counted the killed run's steps too (its state was restored)
    steps = reporter.get_value("train", "total_count", MAX_EPOCH)
    assert steps > steps_before
    assert _optimizer_steps(states) == steps
    assert os.path.exists(os.path.join(out, f"{MAX_EPOCH}epoch.pth"))
    # ESPnet's plots of the first run: loss and accuracy per stream, and the
    # per-dataset validation loss
    for name in ("loss", "loss_audio", "acc_stream2", "loss_tiny_speech_asr"):
        assert os.path.exists(os.path.join(out, "images", f"{name}.png")), name
