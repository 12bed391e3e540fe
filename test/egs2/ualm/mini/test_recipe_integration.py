"""The mini recipe end to end on a tiny corpus (the integration test)."""

import json
import os
import shutil
import subprocess
import time

import pytest
import yaml

from espnet2.ualm.data.codes_io import CodesReader
from espnet2.ualm.data.kaldi_dir import read_kv
from espnet2.ualm.data.rejects import RejectLog

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
)
RECIPE = os.path.join(ROOT, "egs2", "ualm", "mini")


def _copy_recipe(dst: str) -> str:
    """A copy of the setup directory, so the run never writes into the checkout."""
    os.makedirs(dst)
    for name in ("run.sh", "cmd.sh", "path.sh", "db.sh"):
        shutil.copy(os.path.join(RECIPE, name), dst)
    for name in ("conf", "local"):
        shutil.copytree(
            os.path.join(RECIPE, name),
            os.path.join(dst, name),
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    os.symlink(os.path.join(ROOT, "egs2", "ualm", "ualm.sh"), f"{dst}/ualm.sh")
    os.symlink(os.path.join(ROOT, "egs2", "ualm", "scripts"), f"{dst}/scripts")
    return dst


def _run(setup: str, *args: str, expect_success: bool = True) -> str:
    env = dict(os.environ, UALM_MAIN_ROOT=ROOT)
    out = subprocess.run(
        ["bash", "run.sh", *args],
        cwd=setup,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert (out.returncode == 0) == expect_success, (
        out.stdout[-3000:] + out.stderr[-5000:]
    )
    return out.stdout + out.stderr


def _processes_mentioning(text: str) -> list:
    """Command lines of live processes that contain ``text``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(cmd)
    return found


@pytest.mark.integration
def test_mini_recipe_end_to_end(tmp_path):
    setup = _copy_recipe(str(tmp_path / "mini"))
    log = _run(
        setup,
        "--local_data_opts", "--scale 0.03 --no_progress",
        "--bpe_vocab_size", "300",
        "--train_align_config", "conf/train_align_fast.yaml",
        "--train_unified_config", "conf/train_unified_fast.yaml",
        "--enhancer_config", "conf/enhancer_fast.yaml",
    )  # fmt: skip
    assert "Successfully finished stages 1-13" in log

    # the codes have the geometry of the recipe's codec config (its owner)
    with open(f"{setup}/conf/codec.yaml", encoding="utf-8") as f:
        geometry = yaml.safe_load(f)["codec_conf"]
    for split in ("train", "valid", "test"):
        for kind in ("sound", "speech"):
            dset = f"mini_{kind}_{split}"
            codes = CodesReader(f"{setup}/dump/codec/{dset}")
            formatted = read_kv(f"{setup}/dump/audio/{dset}/wav.scp")
            assert len(codes) == len(formatted) > 0
            assert codes.n_codebooks == geometry["n_codebooks"]
            assert codes.geometry["codebook_size"] == geometry["codebook_size"]
            first = next(iter(codes.keys()))
            assert codes[first].max() < geometry["codebook_size"]
        manifests = os.listdir(f"{setup}/dump/manifests/{split}")
        for task in ("text_to_audio", "audio_caption", "audio_qa", "asr", "tts"):
            assert any(m.endswith(f"_{task}.json") for m in manifests), task
        text = json.load(
            open(f"{setup}/dump/manifests/{split}/mini_text_text_dialogue.json")
        )
        assert text["num_examples"] > 0

    # stages 6-7: both curriculum stages trained through ESPnet's Trainer
    for exp in ("ualm_align", "ualm_unified"):
        assert os.path.exists(f"{setup}/exp/{exp}/valid.loss.best.pth"), exp
        assert os.path.exists(f"{setup}/exp/{exp}/images/loss.png"), exp
    assert os.path.exists(f"{setup}/exp/ualm_unified/vocabulary.json")

    # stage 8: the enhancer trained on the 48 kHz masters, evaluated on the test set
    enhancer = f"{setup}/exp/enhancer"
    # run.sh trains it beside stages 6-7 (its own log); stage 8 waited for it
    assert "enhancer starts in the background" in log
    assert "stage 8 finished in the background" in log
    assert "evaluation table" in open(f"{enhancer}/stage8.log").read()
    # ... and then offered the LM the cores this job may use (the LM reads the
    # file at each epoch: ualm_train --num_threads_file)
    with open(f"{enhancer}/lm_num_threads") as f:
        assert int(f.read()) == len(os.sched_getaffinity(0))
    assert os.path.exists(f"{enhancer}/valid.generator_stft_loss.best.pth")
    table = open(f"{enhancer}/RESULTS.md").read()
    assert "## Enhancement VAE on mini_sound_test" in table
    assert "log-spectral distance above 8 kHz" in table

    # stages 9-12: packed directory, inference of every task, scores, archive
    decode = f"{setup}/exp/ualm_unified/decode"
    tasks = {
        "text_to_audio": "mini_sound_test",
        "rich_text_to_audio": "mini_sound_test",
        "audio_caption": "mini_sound_test",
        "audio_qa": "mini_sound_test",
        "asr": "mini_speech_test",
        "tts": "mini_speech_test",
        "text_dialogue": "mini_text_test",
    }
    for task, dset in tasks.items():
        out = f"{decode}/{task}/{dset}"
        errors = RejectLog.read(f"{out}/errors.tsv")
        assert errors == [], (task, errors)
        produced = "wav.scp" if task in ("text_to_audio", "tts") else "text"
        assert os.path.getsize(f"{out}/{produced}") > 0, task
    results = open(f"{decode}/scores/RESULTS.md").read()
    for task in tasks:
        assert f"## {task}" in results, task
    assert "judge_overall" in results and "| wer |" in results
    assert os.path.exists(f"{decode}/scores/plots")
    archive = f"{setup}/exp/ualm_unified/ualm_mini.zip"
    assert (
        "Results (the recipe's scoring stage)"
        in open(f"{setup}/exp/ualm_unified/packed/README.md").read()
    )

    # The archive reproduces the recipe's own greedy outputs bit for bit.
    from espnet2.ualm import UALM
    from espnet2.ualm.inference.data_dir import read_requests

    ualm = UALM.from_pretrained(archive, cache_dir=str(tmp_path / "cache"))
    for task in ("asr", "audio_qa"):
        dset = f"{setup}/dump/audio/{tasks[task]}"
        requests, _ = read_requests(dset, task, ualm.requests.tasks)
        hyps = read_kv(f"{decode}/{task}/{tasks[task]}/text", allow_empty_value=True)
        for out in ualm.run(requests):
            written = " | ".join((out.text or "").split("\n"))
            # The text file holds one line per item, whitespace collapsed.
            assert " ".join(written.split()) == hyps.get(out.id, ""), (
                task,
                out.id,
            )

    # stages 14-18: pairs from the model's own samples, CE on the winners, DPO,
    # its evaluation and the ablation table (margin -1: every prompt a pair)
    log = _run(
        setup,
        "--stage", "14", "--stop_stage", "18",
        "--train_unified_config", "conf/train_unified_fast.yaml",
        "--pair_max_prompts", "4", "--pair_num_candidates", "2", "--pair_margin", "-1",
        "--ablation_runs", "unified/cfg1 unified/best_of4 winners/base dpo/base",
        "--ablation_rows", "unified/cfg1 dpo/base:winners/base unified/best_of4",
    )  # fmt: skip
    assert "Successfully finished stages 14-18" in log
    for split in ("train", "valid"):
        pairs = f"{setup}/dump/pairs/mini_sound_{split}"
        report = json.load(open(f"{pairs}/report.json"))
        assert report["prompts"] == 4 and report["pairs"] == 4, report
        assert len(CodesReader(pairs)) == len(CodesReader(f"{pairs}/rejected")) == 4
    for exp in ("ualm_winners", "ualm_dpo"):
        assert os.path.exists(f"{setup}/exp/{exp}/valid.loss.best.pth"), exp
    # the post-trained model has the unified model's shape (its config's model part)
    dpo_conf = yaml.safe_load(open(f"{setup}/exp/ualm_dpo/config.yaml"))
    unified_conf = yaml.safe_load(open(f"{setup}/exp/ualm_unified/config.yaml"))
    assert dpo_conf["backbone_conf"] == unified_conf["backbone_conf"]
    assert dpo_conf["preference_conf"]["reference"].endswith(
        "exp/ualm_winners/valid.loss.best.pth"
    )
    assert (
        "judge_overall" in open(f"{setup}/exp/ualm_dpo/decode/scores/RESULTS.md").read()
    )
    best = read_kv(
        f"{setup}/exp/ablation/unified/best_of4/text_to_audio/mini_sound_test/best_of.tsv"
    )
    assert best and all(len(v.split()) == 1 + 4 for v in best.values())
    table = open(f"{setup}/exp/ablation/RESULTS.md").read()
    for row in ("| unified/cfg1 | unified/base |", "| dpo/base | winners/base |",
                "| unified/best_of4 | unified/base |"):  # fmt: skip
        assert row in table, table
    assert os.path.exists(f"{setup}/exp/ablation/ablation.png")

    metrics = json.load(open(f"{setup}/exp/codec/metrics.json"))
    assert metrics["valid"]["summary"]["lsd_db"]["mean"] < 6.0

    # Stage 4 again: the codec is kept, every finished shard is skipped.
    log = _run(setup, "--stage", "4", "--stop_stage", "4")
    assert "already fitted" in log
    shard_logs = [
        open(os.path.join(d, "log", f)).read()
        for d in (f"{setup}/dump/codec/{x}" for x in os.listdir(f"{setup}/dump/codec"))
        for f in os.listdir(os.path.join(d, "log"))
    ]
    assert shard_logs and all("already done, skipping" in s for s in shard_logs)

    # stages 19-23: the reasoning rounds (one short epoch each, 4 prompts); after
    # the stage-4 rerun, whose check reads every shard log under dump/codec and
    # stage 20 tokenizes its rounds there
    _reasoning_rounds(setup)

    # The background enhancer's failure paths (stage 7 resumes its finished run).
    # It fails: stage 8 stops the recipe and names its log.
    log = _run(
        setup,
        "--stage", "7", "--stop_stage", "8",
        "--train_unified_config", "conf/train_unified_fast.yaml",
        "--enhancer_config", "conf/no_such_enhancer.yaml",
        expect_success=False,
    )  # fmt: skip
    assert (
        "stage 8 (enhancer, in the background) failed: see exp/enhancer/stage8.log"
        in log
    )
    assert (
        "conf/no_such_enhancer.yaml not found" in open(f"{enhancer}/stage8.log").read()
    )
    assert not os.path.exists(f"{enhancer}/lm_num_threads")  # no core was freed
    # LM training fails while the enhancer trains: the enhancer is stopped too.
    log = _run(
        setup,
        "--stage", "7", "--stop_stage", "8",
        "--train_unified_config", "conf/no_such_config.yaml",
        "--enhancer_config", "conf/enhancer_fast.yaml",
        "--enhancer_exp", "exp/enhancer_stopped",
        expect_success=False,
    )  # fmt: skip
    assert "training config conf/no_such_config.yaml not found" in log
    time.sleep(3)  # a surviving job would have started its trainer by now
    assert _processes_mentioning("exp/enhancer_stopped") == []
    assert not os.path.exists(f"{setup}/exp/enhancer_stopped/RESULTS.md")


def _shorten(config: str) -> None:
    """One short epoch of a post-training config of the copied setup."""
    conf = yaml.safe_load(open(config))
    conf["max_epoch"] = 1
    conf["blend"]["epoch_tokens"] = 2048
    conf["valid_blend"]["epoch_tokens"] = 1024
    yaml.safe_dump(conf, open(config, "w"), sort_keys=False)


def _reasoning_rounds(setup: str) -> None:
    """Stages 19-23 after stages 1-18: SFT on enrichment and clarifying
    dialogues, self-reflection data from that model's attempts, SFT on it,
    the final DPO and the evaluation table with the listening check."""
    for name in ("train_reason.yaml", "train_reflect.yaml"):
        _shorten(f"{setup}/conf/{name}")
    log = _run(
        setup,
        "--stage", "19", "--stop_stage", "23",
        "--train_unified_config", "conf/train_unified_fast.yaml",
        "--reflect_max_prompts", "4", "--reason_pair_max_prompts", "4",
        "--pair_num_candidates", "2", "--pair_margin", "-1",
    )  # fmt: skip
    assert "Successfully finished stages 19-23" in log
    # round 1 started from stage 16's DPO model (it exists here)
    conf = yaml.safe_load(open(f"{setup}/exp/ualm_reason/config.yaml"))
    assert conf["init_param"][0].endswith("exp/ualm_dpo/valid.loss.best.pth")
    # one clarifying dialogue per training clip, its codes the clip's
    clarify = f"{setup}/dump/audio/mini_sound_clarify_train"
    clips = open(f"{setup}/dump/audio/mini_sound_train/clarify.jsonl").readlines()
    dialogues = open(f"{clarify}/dialogue.jsonl").readlines()
    assert len(dialogues) == len(clips) > 0
    assert os.path.realpath(f"{setup}/dump/codec/mini_sound_clarify_train") == (
        os.path.realpath(f"{setup}/dump/codec/mini_sound_train")
    )
    # self-reflection rounds from the model's own attempts, tokenized
    reflect = f"{setup}/dump/reflection/mini_sound_reflect_train"
    kept = len(open(f"{reflect}/attempts.jsonl").readlines())
    rejected = RejectLog.read(f"{reflect}/rejected.tsv")
    assert kept + len(rejected) == 4
    if kept:
        codes = CodesReader(f"{setup}/dump/codec/mini_sound_reflect_train")
        assert any(k.endswith("_v1") for k in codes.keys())
    for exp in ("ualm_reason", "ualm_reflect", "ualm_reason_dpo"):
        assert os.path.exists(f"{setup}/exp/{exp}/valid.loss.best.pth"), exp
    table = open(f"{setup}/exp/reason_eval/RESULTS.md").read()
    for row in (
        "| enrichment vs vague_text_to_audio / mini_sound_test | final | final |",
        "| clarifying_dialogue vs vague_text_to_audio / mini_sound_test | final |",
        "| self_reflection / mini_sound_test | v2 | v1 |",
        "| text_to_audio / mini_sound_test | final | before |",
        "| heard |",
        "| silence |",
    ):
        assert row in table, table
    dialogue = f"{setup}/exp/reason_eval/final/clarifying_dialogue/mini_sound_test"
    assert os.path.exists(f"{dialogue}/dialogue/dialogue.jsonl")
