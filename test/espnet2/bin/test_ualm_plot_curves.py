"""ualm_plot_curves: the Trainer's curves drawn once from checkpoint.pth."""

import os

import pytest
import torch

from espnet2.bin.ualm_plot_curves import main
from espnet2.train.reporter import Reporter


def test_plots_every_statistic_of_the_saved_reporter(tmp_path):
    reporter = Reporter()
    for epoch in (1, 2):
        reporter.set_epoch(epoch)
        for split, loss in (("train", 3.0 / epoch), ("valid", 3.5 / epoch)):
            with reporter.observe(split) as sub:
                sub.register({"loss": loss, "acc_text": 0.1 * epoch})
                sub.next()
    torch.save({"reporter": reporter.state_dict()}, tmp_path / "checkpoint.pth")
    main(["--exp_dir", str(tmp_path)])
    assert sorted(os.listdir(tmp_path / "images")) == ["acc_text.png", "loss.png"]


def test_a_run_without_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/checkpoint.pth"):
        main(["--exp_dir", str(tmp_path)])
