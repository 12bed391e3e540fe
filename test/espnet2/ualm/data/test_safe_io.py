"""safe_io: configs and checkpoints read without running code; errors name
the file."""

import builtins
import datetime
import os

import numpy as np
import pytest
import torch

from espnet2.ualm.data.safe_io import (
    FileFormatError,
    local_dir,
    plain_value_globals,
    read_checkpoint,
    read_json,
    read_yaml,
)


class CodeOnLoad:
    """Unpickling it runs ``exec`` (what a malicious checkpoint does)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('ran')",))


def evil_checkpoint(path, marker) -> str:
    """A state dict that also carries an object running code when unpickled."""
    torch.save({"w": torch.zeros(2), "extra": CodeOnLoad(str(marker))}, path)
    return str(path)


def test_a_checkpoint_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    path = evil_checkpoint(tmp_path / "evil.pth", marker)
    with pytest.raises(FileFormatError, match=f"{path}: refused"):
        read_checkpoint(path)
    assert not marker.exists()


def test_tensors_and_reporter_values_load(tmp_path):
    path = str(tmp_path / "ok.pth")
    stats = {"loss": np.float64(1.5), "time": datetime.timedelta(seconds=3)}
    torch.save({"w": torch.ones(2), "stats": stats}, path)
    state = read_checkpoint(path, safe_globals=plain_value_globals())
    assert torch.equal(state["w"], torch.ones(2)) and state["stats"] == stats


def test_a_truncated_checkpoint_is_named(tmp_path):
    path = str(tmp_path / "model.pth")
    torch.save({"w": torch.ones(1000)}, path)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    with pytest.raises(FileFormatError, match=f"{path}: not a readable torch"):
        read_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        read_checkpoint(str(tmp_path / "missing.pth"))


def test_broken_yaml_and_json_are_named(tmp_path):
    bad_yaml, bad_json = tmp_path / "c.yaml", tmp_path / "c.json"
    bad_yaml.write_text("a: [1,\n")
    bad_json.write_text("{")
    with pytest.raises(FileFormatError, match=f"{bad_yaml}: not valid YAML"):
        read_yaml(str(bad_yaml))
    with pytest.raises(FileFormatError, match=f"{bad_json}: not valid JSON"):
        read_json(str(bad_json))


def test_local_dir_names_a_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="model directory exp/x does not"):
        local_dir("exp/x", "model")
    assert local_dir(str(tmp_path), "model") == str(tmp_path)
