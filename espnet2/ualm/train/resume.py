"""``--resume`` that survives a damaged ``checkpoint.pth``.

ESPnet's ``Trainer.resume`` loads ``<output_dir>/checkpoint.pth`` and stops
with a traceback when that file cannot be loaded (a run killed while writing
it leaves it truncated), although the epoch checkpoints ``<n>epoch.pth``
beside it are intact. Here such a failure is logged naming the file, and the
newest epoch checkpoint that loads is used instead. An epoch checkpoint holds
the model weights only (ESPnet saves ``model.state_dict()`` there), so the
optimizer, scheduler, grad scaler and the reporter's history start afresh
and training goes on at the epoch after it; the log says so.
"""

import logging
import re
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from espnet2.train.gan_trainer import GANTrainer
from espnet2.train.reporter import Reporter
from espnet2.train.trainer import Trainer
from espnet2.ualm.data.safe_io import plain_value_globals, read_checkpoint

EPOCH_FILE = re.compile(r"(\d+)epoch\.pth")


class ResumeError(RuntimeError):
    """Neither ``checkpoint.pth`` nor any epoch checkpoint can be loaded."""


def _loads(path: Path) -> bool:
    """Whether ``path`` loads at all (weights only, as every checkpoint here)."""
    try:
        read_checkpoint(str(path), plain_value_globals())
    except Exception:
        return False
    return True


def resume_with_fallback(
    checkpoint: Union[str, Path],
    model: torch.nn.Module,
    reporter: Reporter,
    optimizers: Sequence[torch.optim.Optimizer],
    schedulers: Sequence[Optional[object]],
    scaler: Optional[object],
    ngpu: int = 0,
    strict: bool = True,
) -> None:
    """ESPnet's ``Trainer.resume``; when ``checkpoint`` does not load, the
    model weights of the newest ``<n>epoch.pth`` that does (see module doc)."""
    checkpoint = Path(checkpoint)
    map_location = f"cuda:{torch.cuda.current_device()}" if ngpu > 0 else "cpu"
    try:
        Trainer.resume(
            checkpoint, model, reporter, optimizers, schedulers, scaler, ngpu, strict
        )
        return
    except Exception as e:
        if _loads(checkpoint):
            raise  # the file is fine: its contents do not fit this run
        error = f"{type(e).__name__}: {e}"
    logging.error(
        f"{checkpoint} cannot be loaded ({error}); trying the epoch checkpoints"
    )
    epochs = sorted(
        (
            (int(m.group(1)), path)
            for path in checkpoint.parent.iterdir()
            if (m := EPOCH_FILE.fullmatch(path.name)) and not path.is_symlink()
        ),
        reverse=True,
    )
    for epoch, path in epochs:
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as e:
            logging.error(f"{path} cannot be loaded either ({type(e).__name__}: {e})")
            continue
        model.load_state_dict(state, strict=strict)
        reporter.set_epoch(epoch)
        logging.warning(
            f"resumed from {path}: the model weights of epoch {epoch} only (an "
            "epoch checkpoint holds no optimizer, scheduler, grad scaler or "
            f"reporter state: they start afresh); training goes on at epoch "
            f"{epoch + 1}"
        )
        return
    raise ResumeError(
        f"--resume: {checkpoint} cannot be loaded ({error}) and no epoch "
        f"checkpoint (<n>epoch.pth) in {checkpoint.parent} can be either; move "
        f"{checkpoint} away to train from scratch"
    )


class ResumingTrainer(Trainer):
    """ESPnet's ``Trainer`` with :func:`resume_with_fallback`."""

    resume = staticmethod(resume_with_fallback)


class ResumingGANTrainer(GANTrainer):
    """ESPnet's ``GANTrainer`` (the enhancer's) with :func:`resume_with_fallback`."""

    resume = staticmethod(resume_with_fallback)
