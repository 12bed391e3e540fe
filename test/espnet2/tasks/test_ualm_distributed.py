"""Distributed data parallel on CPU: two gloo processes stay identical.

ESPnet's own launcher mode for external launchers (``--multiprocessing_distributed
false``, ``RANK``/``WORLD_SIZE``/``MASTER_*`` from ``torchrun``) with
``--ngpu 0 --dist_backend gloo``. This file is also the script each rank runs:
it trains with a ``Trainer`` subclass that, after ESPnet's training loop,
writes a digest of the rank's parameters and the rows the rank trained on.
"""

import hashlib
import json
import os
import socket
import subprocess
import sys
from typing import List

import pytest
import torch
import yaml

from espnet2.tasks.ualm import UALMTask
from espnet2.train.trainer import Trainer
from espnet2.ualm.testing.tiny_corpus import (
    tiny_train_args,
    tiny_train_config,
    write_tiny_corpus,
    write_tiny_pairs,
)


class DigestTrainer(Trainer):
    """ESPnet's Trainer, recording each rank's rows and final parameters."""

    seen: List[str] = []
    steps = 0

    @classmethod
    def train_one_epoch(cls, model, iterator, *args, **kwargs):
        def recording():
            for keys, batch in iterator:
                cls.seen.extend(keys)
                cls.steps += 1
                yield keys, batch

        return super().train_one_epoch(model, recording(), *args, **kwargs)

    @classmethod
    def run(cls, model, *args, **kwargs):
        super().run(model, *args, **kwargs)
        digest = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        rank = torch.distributed.get_rank()
        out = os.path.join(kwargs["trainer_options"].output_dir, f"rank{rank}.json")
        with open(out, "w") as f:
            json.dump(
                {"digest": digest.hexdigest(), "rows": cls.seen, "steps": cls.steps}, f
            )


class DigestTask(UALMTask):
    trainer = DigestTrainer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["ce", "dpo"])
def test_two_gloo_ranks_keep_identical_parameters(tmp_path, objective):
    corpus = write_tiny_corpus(str(tmp_path / "corpus"))
    config = str(tmp_path / "train.yaml")
    options = dict(max_epoch=1, use_matplotlib=False, rows_per_batch=4)
    extra = []
    if objective == "dpo":
        # preference pairs against the initial weights as the reference
        corpus = {**corpus, **write_tiny_pairs(str(tmp_path / "corpus"))}
        reference = str(tmp_path / "reference.pth")
        with open(config, "w") as f:
            yaml.safe_dump(tiny_train_config(**options), f)
        args = UALMTask.get_parser().parse_args(
            tiny_train_args(corpus, config, str(tmp_path / "ref"))
        )
        torch.save(UALMTask.build_model(args).state_dict(), reference)
        options["preference_conf"] = {"reference": reference, "beta": 0.5}
        extra = ["--init_param", reference]
    with open(config, "w") as f:
        yaml.safe_dump(tiny_train_config(**options), f)
    out = tmp_path / "exp"
    cmd = (
        tiny_train_args(corpus, config, str(out))
        + extra
        + [
            "--dist_backend",
            "gloo",
            "--multiprocessing_distributed",
            "false",
        ]
    )
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(
        launcher + [__file__] + cmd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    # each rank's own traceback lines first: the other rank only sees the peer go
    ranks_said = "\n".join(
        line for line in done.stderr.splitlines() if line.startswith("[rank")
    )
    assert done.returncode == 0, ranks_said[-6000:] + done.stderr[-3000:]
    ranks = [json.load(open(out / f"rank{r}.json")) for r in (0, 1)]
    assert ranks[0]["digest"] == ranks[1]["digest"]
    rows = [set(r["rows"]) for r in ranks]
    # each rank its own shard (a short last batch may repeat one row)
    assert rows[0] and rows[1] and len(rows[0] & rows[1]) <= 1
    assert ranks[0]["steps"] == ranks[1]["steps"] > 1
    # the ranks did train (on different rows, so only DDP keeps them equal)
    states = torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=False)
    steps = [int(s["step"]) for s in states["optimizers"][0]["state"].values()]
    assert max(steps) == ranks[0]["steps"]


if __name__ == "__main__":
    DigestTask.main(cmd=sys.argv[1:])
