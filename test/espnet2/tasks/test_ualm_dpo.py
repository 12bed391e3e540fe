"""DPO through ESPnet's Trainer: CE first, then preference pairs against the
CE checkpoint as the frozen reference (the paper's recipe, tiny)."""

import pytest
import torch
import yaml
from test_ualm import _reporter  # the task tests' reader of checkpoint.pth

from espnet2.tasks.ualm import UALMTask
from espnet2.ualm.testing.tiny_corpus import (
    tiny_train_args,
    tiny_train_config,
    write_tiny_corpus,
    write_tiny_pairs,
)


@pytest.mark.slow
def test_ce_then_dpo_against_the_ce_checkpoint(tmp_path):
    root = str(tmp_path / "corpus")
    corpus = write_tiny_corpus(root)
    pairs = write_tiny_pairs(root)
    ce_config = str(tmp_path / "ce.yaml")
    with open(ce_config, "w") as f:
        yaml.safe_dump(tiny_train_config(max_epoch=1, use_matplotlib=False), f)
    ce = tmp_path / "ce"
    UALMTask.main(cmd=tiny_train_args(corpus, ce_config, str(ce)))
    reference = str(ce / "valid.loss.best.pth")

    dpo_config = str(tmp_path / "dpo.yaml")
    with open(dpo_config, "w") as f:
        yaml.safe_dump(
            tiny_train_config(
                max_epoch=3,
                use_matplotlib=False,
                optim_conf={"lr": 0.001, "weight_decay": 0.0},
                preference_conf={"reference": reference, "beta": 0.5, "ce_weight": 0.1},
            ),
            f,
        )
    dpo = tmp_path / "dpo"
    pair_data = {**corpus, **pairs}
    cmd = tiny_train_args(pair_data, dpo_config, str(dpo)) + ["--init_param", reference]
    UALMTask.main(cmd=cmd)

    reporter = _reporter(dpo)
    assert reporter.get_epoch() == 3
    for phase in ("train", "valid"):
        keys = set(reporter.get_keys2(phase))
        assert {"loss", "loss_dpo", "reward_margin", "reward_accuracy"} <= keys, keys
    # the policy starts at the reference (margin 0) and moves the pairs apart
    first = reporter.get_value("train", "reward_margin", 1)
    last = reporter.get_value("train", "reward_margin", 3)
    assert abs(first) < 0.5 and last > first, (first, last)
    assert reporter.get_value("valid", "reward_margin", 3) > 0
    # checkpoints hold the policy only: the same keys as the CE model's
    saved = torch.load(dpo / "3epoch.pth", map_location="cpu", weights_only=True)
    assert set(saved) == set(
        torch.load(reference, map_location="cpu", weights_only=True)
    )
    # resume: the reference is rebuilt from its file, training goes on
    UALMTask.main(cmd=cmd + ["--resume", "true", "--max_epoch", "4"])
    assert _reporter(dpo).get_epoch() == 4
