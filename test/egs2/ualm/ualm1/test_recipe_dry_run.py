"""The GPU recipe (egs2/ualm/ualm1) end to end on a CPU, with stand-ins.

Its corpora and checkpoints cannot be had here, so the run gets stand-ins in
their real formats: AudioCaps (CSV, 48 kHz stereo clips), Clotho (CSV with
five captions, 44.1 kHz mono), LibriSpeech (speaker/chapter folders of FLAC
with .trans.txt), and tiny random checkpoints saved by the libraries' own
``save_pretrained`` (Qwen2 with a byte-level BPE tokenizer, Whisper, X-codec).
Two more corpora are added the way run.sh's header says (``--corpora`` and
entries in conf/datasets.yaml): AudioSkills-style QA (AF3 JSON with ``<sound>``
turns) and Alpaca-style text instructions, with the unified config's text
weight set back to the paper's 0.277 as its comment says.
The recipe's own run.sh, datasets config and training configs run every stage;
only what a CPU cannot do is overridden on the command line, as a user of a
machine without GPUs would: 2 jobs, sdpa instead of flash-attn, float32, short
rows, two steps, the tiny enhancer, torchrun with gloo.
"""

import csv
import json
import os
import re
import shutil
import subprocess
from typing import Dict

import numpy as np
import pytest
import soundfile

from espnet2.ualm.data.codes_io import CodesReader
from espnet2.ualm.data.kaldi_dir import read_kv
from espnet2.ualm.data.rejects import RejectLog

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
)
RECIPE = os.path.join(ROOT, "egs2", "ualm", "ualm1")
CAPTIONS = (
    "a dog barks",
    "rain falls on a roof",
    "a car passes by",
    "people talk in a street",
    "a bell rings twice",
    "wind blows",
)
TRANSCRIPTS = ("HE HOPED THERE WOULD BE STEW", "FOR DINNER TURNIPS AND CARROTS")
LIBRISPEECH_SPLITS = (
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
)
MORE_DATASETS = """
  - data: af3
    task: audio_qa
    dirs: {train: af3_skills_train, valid: af3_skills_valid, test: af3_skills_test}
  - data: text
    task: text_dialogue
    dirs: {train: text_alpaca_train, valid: text_alpaca_valid, test: text_alpaca_test}
"""
DECODED = {  # (task, test set) pairs of conf/datasets.yaml + MORE_DATASETS
    ("audio_qa", "af3_skills_test"),
    ("text_dialogue", "text_alpaca_test"),
    ("text_to_audio", "audiocaps_test"),
    ("audio_caption", "audiocaps_test"),
    ("text_to_audio", "clotho_evaluation"),
    ("audio_caption", "clotho_evaluation"),
    ("asr", "librispeech_test_clean"),
    ("asr", "librispeech_test_other"),
    ("tts", "librispeech_test_clean"),
}


def _tone(path: str, seconds: float, rate: int, channels: int, seed: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.2 * np.sin(2 * np.pi * (200 + 37 * seed) * t)
    x = x + 0.02 * rng.standard_normal(t.size)
    if channels == 2:
        x = np.stack([x, 0.5 * x], axis=1)  # a real stereo image
    soundfile.write(path, x, rate)


def _audiocaps(root: str) -> None:
    """train/val/test.csv and audio/<split>/<youtube_id>.wav (48 kHz stereo)."""
    os.makedirs(root)
    n = 0
    for split, count in (("train", 6), ("val", 2), ("test", 2)):
        with open(f"{root}/{split}.csv", "w", newline="", encoding="utf-8") as f:
            rows = csv.writer(f)
            rows.writerow(["audiocap_id", "youtube_id", "start_time", "caption"])
            for k in range(count):
                youtube_id = f"yt{split}{k:02d}"
                _tone(f"{root}/audio/{split}/{youtube_id}.wav", 1.0, 48000, 2, n)
                rows.writerow([1000 + n, youtube_id, 30, CAPTIONS[n % len(CAPTIONS)]])
                n += 1


def _clotho(root: str) -> None:
    """clotho_captions_<split>.csv (five captions a clip), 44.1 kHz mono."""
    os.makedirs(root)
    n = 0
    for split, count in (("development", 3), ("validation", 1), ("evaluation", 1)):
        path = f"{root}/clotho_captions_{split}.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            rows = csv.writer(f)
            rows.writerow(["file_name"] + [f"caption_{c}" for c in range(1, 6)])
            for k in range(count):
                name = f"{split} clip {k}.wav"
                _tone(f"{root}/{split}/{name}", 1.2, 44100, 1, 20 + n)
                rows.writerow([name] + [CAPTIONS[(n + c) % 6] for c in range(5)])
                n += 1


def _librispeech(root: str) -> None:
    """LibriSpeech/<split>/<speaker>/<chapter>/*.flac and .trans.txt."""
    for s, split in enumerate(LIBRISPEECH_SPLITS):
        speaker, chapter = 100 + s, 200 + s
        folder = f"{root}/LibriSpeech/{split}/{speaker}/{chapter}"
        lines = []
        for u, words in enumerate(TRANSCRIPTS):
            utt = f"{speaker}-{chapter}-{u:04d}"
            _tone(f"{folder}/{utt}.flac", 0.8, 16000, 1, 40 + 2 * s + u)
            lines.append(f"{utt} {words}\n")
        with open(f"{folder}/{speaker}-{chapter}.trans.txt", "w") as f:
            f.writelines(lines)


def _af3(root: str) -> None:
    """skills_<split>.json: AudioSkills conversations about clips/<n>.wav."""
    splits = (("train", 4), ("valid", 1), ("test", 2))
    for split, count in splits:
        items = []
        for k in range(count):
            clip = f"clips/{split}{k}.wav"
            _tone(f"{root}/{clip}", 1.0, 16000, 1, 60 + k)
            turns = [
                {"from": "human", "value": "<sound>\nHow many tones are there?"},
                {"from": "gpt", "value": ("One.", "Two.", "Three.")[k % 3]},
            ]
            items.append({"id": f"{split}{k}", "sound": clip, "conversations": turns})
        with open(f"{root}/skills_{split}.json", "w") as f:
            json.dump(items, f)


def _text_instruct(root: str) -> None:
    """alpaca_<split>.json: instruction / input / output records."""
    os.makedirs(root)
    for split, count in (("train", 4), ("valid", 1), ("test", 2)):
        items = [
            {
                "instruction": "Add the numbers.",
                "input": f"{k} and 2",
                "output": str(k + 2),
            }
            for k in range(count)
        ]
        with open(f"{root}/alpaca_{split}.json", "w") as f:
            json.dump(items, f)


def _checkpoints(root: str) -> Dict[str, str]:
    from espnet2.ualm.testing.tiny_codec import save_tiny_xcodec
    from espnet2.ualm.testing.tiny_model import save_tiny_qwen2, save_tiny_whisper
    from espnet2.ualm.testing.tiny_text import save_tiny_hf_tokenizer

    qwen = save_tiny_hf_tokenizer(save_tiny_qwen2(f"{root}/qwen", vocab_size=320))
    return {
        "qwen": qwen,
        "whisper": save_tiny_whisper(f"{root}/whisper"),
        "xcodec": save_tiny_xcodec(f"{root}/xcodec"),
    }


def _setup(dst: str, xcodec: str) -> str:
    """A copy of the recipe with two CPU-sized configs added beside its own."""
    os.makedirs(dst)
    for name in ("run.sh", "cmd.sh", "path.sh", "db.sh"):
        shutil.copy(os.path.join(RECIPE, name), dst)
    for name in ("conf", "local"):
        shutil.copytree(os.path.join(RECIPE, name), os.path.join(dst, name))
    os.symlink(os.path.join(ROOT, "egs2", "ualm", "ualm.sh"), f"{dst}/ualm.sh")
    os.symlink(os.path.join(ROOT, "egs2", "ualm", "scripts"), f"{dst}/scripts")
    with open(f"{dst}/conf/codec_cpu.yaml", "w") as f:
        f.write(
            f"codec: xcodec\ncodec_conf:\n  model_dir: {xcodec}\n  bandwidth: 4.0\n"
        )
    shutil.copy(
        os.path.join(ROOT, "egs2", "ualm", "mini", "conf", "enhancer_fast.yaml"),
        f"{dst}/conf/enhancer_cpu.yaml",
    )
    with open(os.path.join(RECIPE, "conf", "decode.yaml")) as f:
        decode = f.read()
    for key, value in (("max_audio_seconds", "1.0"), ("max_text_tokens", "16")):
        decode = decode.replace(f"\n{key}:", f"\n{key}: {value}  #", 1)
    with open(f"{dst}/conf/decode_cpu.yaml", "w") as f:
        f.write(decode)
    with open(f"{dst}/conf/datasets.yaml", "a") as f:
        f.write(MORE_DATASETS)
    unified = f"{dst}/conf/train_unified_qwen2.5_1.5b.yaml"
    with open(unified) as f:
        config = f.read()
    with open(unified, "w") as f:
        f.write(config.replace("text: 0.0}", "text: 0.277}"))
    return dst


@pytest.mark.integration
def test_ualm1_recipe_runs_every_stage_on_stand_ins(tmp_path):
    corpora = tmp_path / "corpora"
    _audiocaps(str(corpora / "audiocaps"))
    _clotho(str(corpora / "clotho"))
    _librispeech(str(corpora / "librispeech"))
    _af3(str(corpora / "af3"))
    _text_instruct(str(corpora / "text_instruct"))
    models = _checkpoints(str(tmp_path / "models"))
    setup = _setup(str(tmp_path / "ualm1"), models["xcodec"])

    env = dict(
        os.environ,
        UALM_MAIN_ROOT=ROOT,
        AUDIOCAPS=str(corpora / "audiocaps"),
        CLOTHO=str(corpora / "clotho"),
        LIBRISPEECH=str(corpora / "librispeech"),
        AF3=str(corpora / "af3"),
        TEXT_INSTRUCT=str(corpora / "text_instruct"),
        QWEN_DIR=models["qwen"],
        WHISPER_DIR=models["whisper"],
        NGPU="1",
    )
    cpu_train_args = " ".join(
        [
            "--multiprocessing_distributed false --dist_backend gloo",
            f"--backbone_conf pretrained_dir={models['qwen']}",
            "--backbone_conf attn_implementation=sdpa --backbone_conf dtype=float32",
            f"--audio_encoder_conf pretrained_dir={models['whisper']}",
            "--max_tokens_per_row 1024 --rows_per_batch 2",
            "--num_iters_per_epoch 2 --max_epoch 1 --use_amp false --num_workers 0",
        ]
    )
    out = subprocess.run(
        [
            "bash", "run.sh", "--nj", "2", "--ngpu", "0", "--inference_nj", "1",
            "--local_data_opts",
            "--corpora audiocaps,clotho,librispeech,af3,text_instruct",
            "--train_launcher", "torchrun --nproc_per_node 1",
            "--train_args", cpu_train_args,
            "--codec_config", "conf/codec_cpu.yaml",
            "--enhancer_config", "conf/enhancer_cpu.yaml",
            "--decode_config", "conf/decode_cpu.yaml",
        ],
        cwd=setup, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=1500,
    )  # fmt: skip
    log = out.stdout  # stages and their logs in order (split by stage below)
    assert out.returncode == 0, log[-8000:]
    assert "Successfully finished stages 1-13" in log

    # stages 1-2: every corpus converted from its own format; masters for
    # the stereo 48 kHz AudioCaps clips only, the others listed with the reason
    dump = f"{setup}/dump/audio"
    assert len(read_kv(f"{dump}/clotho_development/wav.scp")) == 15  # 3 clips x 5
    assert len(read_kv(f"{dump}/librispeech_test_other/text")) == 2
    masters = read_kv(f"{dump}/audiocaps_train/wav48.scp")
    assert len(masters) == 6
    x, rate = soundfile.read(next(iter(masters.values())), always_2d=True)
    assert rate == 48000 and x.shape[1] == 2
    no_master = RejectLog.read(f"{dump}/clotho_development/no_master.tsv")
    assert len(no_master) == 15 and no_master[0].reason == "mono source"

    # stages 3-5: the LLM's tokenizer, X-codec codes, one manifest per directory
    with open(f"{setup}/data/text_tokenizer/tokenizer.yaml") as f:
        assert f"dir: {models['qwen']}" in f.read()
    codes = CodesReader(f"{setup}/dump/codec/librispeech_train_other_500")
    assert len(codes) == 2 and codes.n_codebooks == 8
    train = os.listdir(f"{setup}/dump/manifests/train")
    assert "librispeech_asr-librispeech_train_clean_360.json" in train

    # stages 6-7 under torchrun; the validation set has every corpus (its
    # LibriSpeech manifests are named otherwise than the training ones)
    assert "no validation manifests" not in log
    for exp in ("ualm_align", "ualm_unified"):
        assert os.path.exists(f"{setup}/exp/{exp}/valid.loss.best.pth"), exp
    unified = log.split("Stage 7: unified training", 1)[1].split("Stage 8", 1)[0]
    shares = re.search(r"token share by group: ([^\n]*)", unified).group(1)
    assert "text" in shares and "understanding" in shares, shares
    aligned = log.split("Stage 6: modality alignment", 1)[1].split("Stage 7", 1)[0]
    assert "group(s) ['text'] have sources but weight 0" in aligned  # on purpose

    # stage 8: the enhancer on the AudioCaps masters, evaluated on their test set
    with open(f"{setup}/exp/enhancer/RESULTS.md") as f:
        enhancer = f.read()
    assert "## Enhancement VAE on audiocaps_test" in enhancer
    assert "clotho" not in enhancer

    # stages 9-12: every task on its test sets, scores, the archive
    decode = f"{setup}/exp/ualm_unified/decode_cpu"
    for task, dset in DECODED:
        assert RejectLog.read(f"{decode}/{task}/{dset}/errors.tsv") == [], (task, dset)
        produced = "wav.scp" if task in ("text_to_audio", "tts") else "text"
        written = read_kv(f"{decode}/{task}/{dset}/{produced}", allow_empty_value=True)
        assert len(written) > 0, (task, dset)
    with open(f"{decode}/scores/RESULTS.md") as f:
        results = f.read()
    assert "- text_to_audio / audiocaps_test: fd " in results
    assert "- asr / librispeech_test_other: wer " in results
    assert "- audio_qa / af3_skills_test: accuracy " in results
    assert "- text_dialogue / text_alpaca_test: accuracy " in results

    from espnet2.ualm import UALM
    from espnet2.ualm.inference.data_dir import read_requests
    from espnet2.ualm.text.tokenizer import HFTextTokenizer

    archive = f"{setup}/exp/ualm_unified/ualm_qwen2.5_1.5b.zip"
    ualm = UALM.from_pretrained(archive, cache_dir=str(tmp_path / "cache"))
    assert isinstance(ualm.tokenizer, HFTextTokenizer)
    assert type(ualm.tokenizer.tok).__name__ == "Qwen2Tokenizer"
    assert ualm.tokenizer.model_dir.startswith(str(tmp_path / "cache"))
    requests, _ = read_requests(
        f"{dump}/librispeech_test_clean", "asr", ualm.requests.tasks
    )
    hyps = read_kv(f"{decode}/asr/librispeech_test_clean/text", allow_empty_value=True)
    for result in ualm.run(requests):
        assert " ".join((result.text or "").split()) == hyps[result.id], result.id
