"""UALMTask.build_model_from_file loads checkpoints weights-only."""

import builtins

import pytest
import torch

from espnet2.tasks.ualm import UALMTask
from espnet2.ualm.data.safe_io import FileFormatError


def test_a_checkpoint_that_runs_code_is_refused(experiment, tmp_path):
    marker = tmp_path / "ran"

    class CodeOnLoad:
        def __reduce__(self):
            return (builtins.exec, (f"open({str(marker)!r}, 'w')",))

    state = torch.load(experiment["model_file"], weights_only=True)
    state["extra"] = CodeOnLoad()
    evil = str(tmp_path / "model.pth")
    torch.save(state, evil)
    with pytest.raises(FileFormatError, match=f"{evil}: refused"):
        UALMTask.build_model_from_file(experiment["train_config"], evil)
    assert not marker.exists()
