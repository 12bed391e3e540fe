"""--resume with a truncated checkpoint.pth: the newest epoch checkpoint that
loads is used (its model weights), or a clear error names the file."""

import logging

import pytest
import torch

from espnet2.tasks.ualm import UALMTask
from espnet2.tasks.ualm_enhancer import UALMEnhancerTask
from espnet2.train.reporter import Reporter
from espnet2.ualm.train.resume import ResumeError, resume_with_fallback


def _model(seed):
    torch.manual_seed(seed)
    return torch.nn.Linear(3, 2)


def _checkpoints(tmp_path):
    """1epoch.pth and 2epoch.pth intact, 3epoch.pth and checkpoint.pth cut."""
    for epoch in (1, 2, 3):
        torch.save(_model(epoch).state_dict(), tmp_path / f"{epoch}epoch.pth")
    (tmp_path / "latest.pth").symlink_to("3epoch.pth")
    model = _model(3)
    reporter = Reporter()
    reporter.set_epoch(3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.save(
        {
            "model": model.state_dict(),
            "reporter": reporter.state_dict(),
            "optimizers": [optimizer.state_dict()],
            "schedulers": [None],
            "scaler": None,
        },
        tmp_path / "checkpoint.pth",
    )
    for name in ("3epoch.pth", "checkpoint.pth"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) // 2])  # killed mid-write
    return tmp_path / "checkpoint.pth"


def _resume(checkpoint):
    model, reporter = _model(0), Reporter()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    resume_with_fallback(checkpoint, model, reporter, [optimizer], [None], None)
    return model, reporter


def test_a_truncated_checkpoint_falls_back_to_the_last_good_epoch(tmp_path, caplog):
    checkpoint = _checkpoints(tmp_path)
    with caplog.at_level(logging.INFO):
        model, reporter = _resume(checkpoint)
    expected = _model(2).state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert reporter.get_epoch() == 2  # training goes on at epoch 3
    assert f"{checkpoint} cannot be loaded" in caplog.text
    assert "3epoch.pth cannot be loaded either" in caplog.text
    assert "model weights of epoch 2 only" in caplog.text


def test_no_loadable_checkpoint_is_a_clear_error(tmp_path):
    checkpoint = _checkpoints(tmp_path)
    for epoch in (1, 2):
        (tmp_path / f"{epoch}epoch.pth").write_bytes(b"cut")
    with pytest.raises(ResumeError, match=f"{checkpoint} cannot be loaded"):
        _resume(checkpoint)


def test_a_good_checkpoint_resumes_as_espnet_does(tmp_path):
    model = _model(5)
    reporter = Reporter()
    reporter.set_epoch(4)
    torch.save(
        {
            "model": model.state_dict(),
            "reporter": reporter.state_dict(),
            "optimizers": [torch.optim.SGD(model.parameters(), lr=0.1).state_dict()],
            "schedulers": [None],
            "scaler": None,
        },
        tmp_path / "checkpoint.pth",
    )
    resumed, reporter = _resume(tmp_path / "checkpoint.pth")
    assert torch.equal(resumed.weight, model.weight) and reporter.get_epoch() == 4


def test_the_tasks_train_with_the_falling_back_trainer():
    assert UALMTask.trainer.resume is resume_with_fallback
    assert UALMEnhancerTask.trainer.resume is resume_with_fallback
