"""ualm_enhancer_eval.evaluate: a bad clip is listed and the others measured."""

import numpy as np
import soundfile

from espnet2.bin.ualm_enhancer_eval import evaluate
from espnet2.ualm.data.rejects import RejectLog
from espnet2.ualm.enhancer.resample import ResampleEnhancer


def test_bad_clips_are_rejected_one_by_one(tmp_path):
    t = np.arange(4800) / 48000
    tone = 0.2 * np.sin(2 * np.pi * 440 * t)
    masters, inputs = {}, {}
    for utt in ("a", "b", "no_input", "x/y"):
        path = tmp_path / f"{utt.replace('/', '_')}.wav"
        soundfile.write(path, np.stack([tone, tone], axis=1), 48000)
        masters[utt] = str(path)
        soundfile.write(tmp_path / f"in_{path.name}", tone[::3], 16000)
        inputs[utt] = str(tmp_path / f"in_{path.name}")
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    masters["broken"] = str(tmp_path / "broken.wav")
    inputs["broken"] = inputs["a"]
    del inputs["no_input"]
    rejects = RejectLog("enhancer_eval")
    per_clip = evaluate(
        ResampleEnhancer(16000, 48000),
        masters,
        inputs,
        write_wav_dir=str(tmp_path / "out"),
        rejects=rejects,
    )
    assert sorted(per_clip["vae"]) == sorted(per_clip["baseline"]) == ["a", "b"]
    reasons = {r.utt_id: r.reason for r in rejects.items}
    assert sorted(reasons) == ["broken", "no_input", "x/y"]
    assert "no cached input" in reasons["no_input"]
    assert "cannot be a file name" in reasons["x/y"]
    assert "unreadable" in reasons["broken"]
