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


def test_a_checkpoint_that_runs_code_is_refused(tmp_path):
    import builtins

    from espnet2.ualm.data.safe_io import FileFormatError

    class CodeOnLoad:
        def __reduce__(self):
            return (builtins.exec, (f"open({str(tmp_path / 'ran')!r}, 'w')",))

    torch.save({"reporter": CodeOnLoad()}, tmp_path / "checkpoint.pth")
    with pytest.raises(FileFormatError, match="checkpoint.pth: refused"):
        main(["--exp_dir", str(tmp_path)])
    assert not (tmp_path / "ran").exists()


def test_a_real_training_checkpoint_loads_weights_only(experiment, tmp_path):
    exp_dir = os.path.dirname(experiment["train_config"])
    main(["--exp_dir", exp_dir, "--out_dir", str(tmp_path / "images")])
    assert "loss.png" in os.listdir(tmp_path / "images")
