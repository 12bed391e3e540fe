#!/usr/bin/env bash
# UALM recipe stages, shared by every setup in egs2/ualm/ (run from a setup
# directory such as egs2/ualm/mini through its run.sh).
#
#   1. data preparation          local/data.sh: corpora -> data/<dataset>/
#   2. audio formatting          codec's sample rate, mono, length filter -> dump/audio/
#   3. text tokenizer            sentencepiece BPE, or a Hugging Face tokenizer dir
#   4. codec fitting + tokens    exp/codec (trainable codecs), dump/codec/<dataset>/
#   5. manifests                 dump/manifests/<split>/ (+ length statistics, plot)
#   6. modality alignment        exp/ualm_align (backbone + encoder frozen)
#   7. unified training          exp/ualm_unified (from stage 6 via --init_param)
#   8. enhancer                  exp/enhancer: Enhancement VAE trained on the 48 kHz
#                                masters, evaluated against resampling (RESULTS.md)
#   9. packed model directory    exp/ualm_unified/packed (from_pretrained loads it)
#  10. inference                 every task on its test sets -> exp/ualm_unified/<decode config>/
#  11. scoring                   exp/ualm_unified/<decode config>/scores/RESULTS.md (+ plots)
#  12. pack                      the model card with the results, one .zip (ESPnet pack)
#  13. upload                    to the Hugging Face hub (only with --hf_repo)
# Post-training of generation (spec section 3, DPO), run when asked (--stage 14):
#  14. preference pairs          N scored candidates per prompt -> dump/pairs/
#  15. CE on the winners         exp/ualm_winners (from stage 7), manifests dump/manifests_pairs/
#  16. DPO                       exp/ualm_dpo (from stage 15, which is also its reference)
#  17. DPO model evaluation      stages 9-11 for exp/ualm_dpo
#  18. ablations                 decode settings x models on the test sets ->
#                                exp/ablation/RESULTS.md (paired tests, timings)
# Reasoning rounds (spec section 4, UALM-Reason), run when asked (--stage 19):
#  19. reasoning SFT 1           enrichment + clarifying dialogues -> exp/ualm_reason
#  20. self-reflection data      stage 19's model's own first attempts, judged and
#                                critiqued -> dump/reflection/, dump/audio/<data>_reflect_*
#  21. reasoning SFT 2           self-reflection rounds (+ round 1) -> exp/ualm_reflect
#  22. final DPO                 pairs from stage 21's model scored against the plan,
#                                CE on the winners, DPO -> exp/ualm_reason_dpo
#  23. reasoning evaluation      enrichment, dialogue, reflection v1/v2, final model,
#                                listening check -> exp/reason_eval/RESULTS.md
#
# Every stage that can drop an item writes rejected.tsv next to its output and
# logs how many items it rejected. Stages are resumable: re-running stage 4 or
# 10 skips the finished shards whose inputs are unchanged (and redoes the others).
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}
die() { log "Error: $*" >&2; exit 1; }
SECONDS=0

# General
stage=1               # first stage to run
stop_stage=13         # last stage to run (14-23: post-training, when asked)
nj=2                  # parallel jobs for data processing
python=python3        # python of tools/venv (activated by path.sh)

# Data
local_data_opts=""    # options passed to local/data.sh
datasets_config=conf/datasets.yaml   # which task reads which dataset (stage 5)
task_templates=""     # YAML of the recipe's own tasks (espnet2/ualm/tokens/tasks.py),
                      # read by stages 5-7, 10 and 11; empty: the built-in tasks only
min_sec=0.1           # shortest audio kept (stage 2)
max_sec=30.0          # longest audio kept (stage 2)
min_input_fs=""       # lowest input rate accepted (default: the codec's rate)
audio_format=flac     # formatted audio files: flac or wav
master_fs=""          # enhancer: stage 2 also keeps a stereo copy of each stereo
                      # source at the output rate of ${enhancer_config}'s enhancer
                      # (wav48.scp, its target) where a data directory has no
                      # wav48.scp of its own; a number: at that rate; empty: none

# Text tokenizer (stage 3)
hf_tokenizer_dir=""   # a Hugging Face tokenizer directory (Qwen2.5); empty: train BPE
bpe_vocab_size=2000   # sentencepiece vocabulary when training one
text_tokenizer_dir=data/text_tokenizer

# Codec (stage 4)
codec_config=conf/codec.yaml   # {codec: name, codec_conf: {...}}
codec_dir=exp/codec            # where a trainable codec is fitted and saved
codec_fit_opts=""              # extra options of ualm_fit_codec (e.g. --max_train_frames)
tokenize_batch_size=16

# Training (stages 6-7), through ESPnet's Trainer (espnet2.bin.ualm_train)
ngpu=0                          # GPUs per node (0: CPU); > 0 also puts tokenization
                                # and inference jobs on a GPU (--device cuda)
train_launcher=""               # runs ualm_train, e.g. "torchrun --nproc_per_node 8"
                                # (with train_args "--multiprocessing_distributed false
                                # --dist_backend nccl"); empty: ${python}
train_align_config=conf/train_align.yaml
train_unified_config=conf/train_unified.yaml
align_exp=exp/ualm_align
unified_exp=exp/ualm_unified
train_args=""                   # extra ualm_train options for both stages
train_unified_args=""           # extra ualm_train options for stage 7 only (the mini's
                                # longer setting: "--max_epoch 240", run.sh's header)

# Enhancer (stage 8), through ESPnet's GANTrainer (espnet2.bin.ualm_enhancer_train)
enhancer_config=conf/enhancer.yaml
enhancer_exp=exp/enhancer
enhancer_args=""                # extra ualm_enhancer_train options
enhancer_in_background=false   # train the enhancer beside stages 6-7 (2+ cores)

# Inference, scoring, packing (stages 9-13) of the unified model
decode_config=conf/decode.yaml  # decoding settings (espnet2.ualm.inference.pipeline.DecodeSettings)
inference_tag=""                # decode dir name (default: the decode config's name)
inference_nj=2                  # parallel jobs per test set
inference_tasks=""              # tasks to decode (default: every task of datasets_config)
test_sets=""                    # data dirs to decode (default: the test sets of datasets_config; any split)
packed_dir=""                   # packed model directory (default: ${unified_exp}/packed)
pack_archive=""                 # the one-file model (default: ${unified_exp}/<model_name>.zip)
model_name=ualm                 # name in the model card and the archive
score_opts=""                   # extra options of espnet2.bin.ualm_score (judge, answer words, models)
hf_repo=""                      # stage 13: hub repository owner/name (token from $HF_TOKEN)

# Post-training (stages 14-18)
pairs_datasets_config=conf/datasets_pairs.yaml  # prompts of the pairs (stage 14) and
                                # the tasks trained on them (text_to_audio: the
                                # winners, text_to_audio_preference: the pairs)
pair_scorer_config=conf/pair_scorer.yaml  # espnet2.ualm.scoring.preference.build_scorer
pair_decode_config=""           # sampling of the candidates (default: ${decode_config})
pair_num_candidates=4           # candidates per prompt (>= 2)
pair_margin=0.1                 # keep a pair when best - worst score exceeds it
pair_max_prompts=0              # prompts per data dir (0: all)
train_winners_config=conf/train_winners.yaml
train_dpo_config=conf/train_dpo.yaml
winners_exp=exp/ualm_winners
dpo_exp=exp/ualm_dpo
post_inference_tasks=""         # tasks decoded for post-trained models (default:
                                # the tasks of ${pairs_datasets_config})
ablation_configs=""             # stage 18: decoding settings "name=file" (YAML
                                # overrides of the packed decode.yaml); "base" is
                                # ${decode_config}
ablation_models=""              # stage 18: models "name=exp_dir"; "unified" is ${unified_exp}
ablation_runs=""                # stage 18: "model/setting" runs decoded and scored
                                # (unified/base, stage 10's, always)
ablation_rows=""                # stage 18: table rows "run[:baseline run]" (default:
                                # every run against unified/base)

# Reasoning rounds (stages 19-23)
reason_datasets_config=conf/datasets_reason.yaml     # stage 19: enrichment and clarifying
                                # dialogues (<data>_clarify_<split>, written from each
                                # <data>_<split>'s clarify.jsonl), with replay
reflect_datasets_config=conf/datasets_reflect.yaml   # stage 21: self-reflection rounds
                                # (<data>_reflect_<split>, stage 20's), with replay
reason_eval_datasets_config=conf/datasets_reason_eval.yaml  # stage 23: tasks decoded
train_reason_config=conf/train_reason.yaml           # stage 19
train_reflect_config=conf/train_reflect.yaml         # stage 21
reason_init=""                  # stage 19's initial checkpoint (default: stage 16's DPO
                                # model when it exists, else stage 7's)
reason_exp=exp/ualm_reason
reflect_exp=exp/ualm_reflect
reflect_attempts=local/make_reflection_data.py  # stage 20: the setup's script that
                                # writes and judges the first attempts (its --help)
reflect_max_prompts=0           # stage 20: prompts per data dir (0: all)
reason_pair_scorer_config=conf/pair_scorer_rich.yaml  # stage 22: pairs ranked by the plan
reason_pair_max_prompts=0       # stage 22: prompts per data dir (0: --pair_max_prompts)
reason_winners_exp=exp/ualm_reason_winners
reason_dpo_exp=exp/ualm_reason_dpo
reason_eval_dir=exp/reason_eval
listen_silence_config=conf/listen_silence.yaml  # stage 23: the listening control
listening_check=local/listening_agreement.py    # stage 23: the model's caption of its
                                # attempt against the setup's judge ("": skipped)

help_message=$(cat << EOF
Usage: $0 [--stage N] [--stop_stage N] [--nj N] [--<option> <value>]

Stages: 1 data, 2 audio formatting, 3 text tokenizer, 4 codec fit + tokens,
5 manifests, 6 modality alignment, 7 unified training, 8 enhancer,
9 packed model dir, 10 inference, 11 scoring, 12 pack, 13 upload (--hf_repo);
post-training when asked: 14 preference pairs, 15 CE on the winners, 16 DPO,
17 DPO model evaluation, 18 ablations (exp/ablation/RESULTS.md);
reasoning rounds when asked: 19 SFT on enrichment and clarifying dialogues,
20 self-reflection data, 21 SFT on it, 22 final DPO, 23 reasoning evaluation
(exp/reason_eval/RESULTS.md).
Outputs: data/,
dump/audio/, ${text_tokenizer_dir}/, exp/codec/, dump/codec/, dump/manifests/,
exp/ualm_align/, exp/ualm_unified/ (training curves in images/),
dump/enhancer/, exp/enhancer/ (RESULTS.md).
EOF
)

. "$(dirname "${BASH_SOURCE[0]}")/scripts/parse_options.sh"
[ $# -eq 0 ] || die "unexpected arguments: $* (see --help)"

# Values that bash would take for "no stage to run" (a test of a non-number is
# false): checked before any work. Unknown option names are parse_options.sh's.
last_stage=23
[[ "${stage}" =~ ^[0-9]+$ ]] && [ "${stage}" -ge 1 ] && [ "${stage}" -le "${last_stage}" ] \
    || die "--stage must be a stage number from 1 to ${last_stage}, got '${stage}'"
[[ "${stop_stage}" =~ ^[0-9]+$ ]] && [ "${stop_stage}" -ge "${stage}" ] \
    || die "--stop_stage must be a stage number from --stage (${stage}) on, got '${stop_stage}'"
for _opt in nj inference_nj tokenize_batch_size bpe_vocab_size pair_num_candidates; do
    [[ "${!_opt}" =~ ^[0-9]+$ ]] && [ "${!_opt}" -ge 1 ] \
        || die "--${_opt} must be a positive integer, got '${!_opt}'"
done
[[ "${ngpu}" =~ ^[0-9]+$ ]] || die "--ngpu must be a number of GPUs, got '${ngpu}'"
case "${enhancer_in_background}" in
    true|false) ;;
    *) die "--enhancer_in_background must be true or false, got '${enhancer_in_background}'" ;;
esac

. ./path.sh
. ./cmd.sh

[ -f "${codec_config}" ] || die "codec config ${codec_config} not found"
[ -f "${datasets_config}" ] || die "datasets config ${datasets_config} not found"
# Names the datasets config lacks would leave stages 10-11 nothing to decode.
if [ "${stage}" -le 11 ] && [ "${stop_stage}" -ge 10 ] \
        && [ -n "${inference_tasks}${test_sets}" ]; then
    ${python} - "${datasets_config}" "${inference_tasks}" "${test_sets}" << 'PY' || exit 1
import sys
from espnet2.ualm.data.datasets_config import (
    load_datasets_config, unknown_sets, unknown_tasks,
)
path, tasks, sets = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
conf = load_datasets_config(path)
if unknown_tasks(conf, tasks):
    known = " ".join(sorted({e["task"] for e in conf["datasets"]}))
    sys.exit(f"ualm.sh: Error: --inference_tasks: no task "
             f"'{unknown_tasks(conf, tasks)[0]}' in {path} (its tasks: {known})")
if unknown_sets(conf, sets):
    sys.exit(f"ualm.sh: Error: --test_sets: '{unknown_sets(conf, sets)[0]}' "
             f"belongs to no dataset of {path}")
PY
fi
task_opts=""
if [ -n "${task_templates}" ]; then
    [ -f "${task_templates}" ] || die "task templates ${task_templates} not found"
    task_opts="--task_templates ${task_templates}"
fi
device=cpu
[ "${ngpu}" -eq 0 ] || device=cuda

# Data directories of stage 1: every data/* holding wav.scp or dialogue.jsonl.
data_dirs() {
    local d
    for d in data/*/; do
        d=${d%/}
        if [ -f "${d}/wav.scp" ] || [ -f "${d}/dialogue.jsonl" ]; then
            basename "${d}"
        fi
    done
}

codec_model_opt() {
    # A fitted codec lives in ${codec_dir}; a pretrained one is named in the config.
    if [ -f "${codec_dir}/config.json" ]; then echo "--codec_model_dir ${codec_dir}"; fi
}

# Stage 4b (and 20): the codec codes of dump/audio/$1 in dump/codec/$1.
tokenize_dir() {
    local dset=$1 out=dump/codec/$1
    # shellcheck disable=SC2046,SC2086
    ${train_cmd} JOB=1:"${nj}" "${out}/log/tokenize.JOB.log" \
        ${python} -m espnet2.bin.ualm_tokenize_audio \
            --codec_config "${codec_config}" $(codec_model_opt) \
            --wav_scp "dump/audio/${dset}/wav.scp" --output_dir "${out}" \
            --batch_size "${tokenize_batch_size}" --device "${device}" \
            --job JOB --num_jobs "${nj}" \
        || die "tokenization of ${dset} failed; logs in ${out}/log (re-run resumes)"
    ${python} -m espnet2.bin.ualm_tokenize_audio --merge \
        --output_dir "${out}" --num_jobs "${nj}"
}

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
    log "Stage 1: data preparation (local/data.sh ${local_data_opts})"
    # shellcheck disable=SC2086
    local/data.sh ${local_data_opts}
    [ -n "$(data_dirs)" ] || die "stage 1 made no data directory under data/"
fi

if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ]; then
    log "Stage 2: audio formatting (codec rate, mono, ${min_sec}-${max_sec} s)"
    fs_opt=""
    [ -z "${min_input_fs}" ] || fs_opt="--min_input_fs ${min_input_fs}"
    if [ "${master_fs}" = enhancer ]; then
        master_fs=$(${python} -m espnet2.bin.ualm_enhancer_rates \
            --config "${enhancer_config}") \
            || die "no enhancer output rate from ${enhancer_config}"
    fi
    [ -z "${master_fs}" ] || fs_opt+=" --master_fs ${master_fs}"
    for dset in $(data_dirs); do
        # shellcheck disable=SC2086
        ${python} -m espnet2.bin.ualm_format_audio \
            --codec_config "${codec_config}" ${fs_opt} \
            --in_dir "data/${dset}" --out_dir "dump/audio/${dset}" \
            --min_sec "${min_sec}" --max_sec "${max_sec}" \
            --audio_format "${audio_format}" --nj "${nj}"
    done
    for dset in $(data_dirs); do
        n_rej=$(($(wc -l < "dump/audio/${dset}/rejected.tsv") - 1))
        [ "${n_rej}" -eq 0 ] || log "  ${dset}: ${n_rej} rejected, see dump/audio/${dset}/rejected.tsv"
        if [ -f "dump/audio/${dset}/no_master.tsv" ]; then
            n_no=$(($(wc -l < "dump/audio/${dset}/no_master.tsv") - 1))
            [ "${n_no}" -eq 0 ] || log "  ${dset}: ${n_no} items without a ${master_fs} Hz stereo master, see dump/audio/${dset}/no_master.tsv"
        fi
    done
fi

# The data directories of split $1 (train, valid, test) in the datasets config that
# stage 1 made, sorted.
split_sets() {
    local made d
    made=" $(data_dirs | tr '\n' ' ') "
    for d in $(${python} - "${datasets_config}" "$1" << 'PY'
import sys
from espnet2.ualm.data.datasets_config import load_datasets_config, split_dirs
print(*split_dirs(load_datasets_config(sys.argv[1]), sys.argv[2]))
PY
    ); do
        if [[ "${made}" == *" ${d} "* ]]; then echo "${d}"; fi
    done
}
train_sets() { split_sets train; }
valid_sets() { split_sets valid; }

if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ]; then
    if [ -n "${hf_tokenizer_dir}" ]; then
        log "Stage 3: text tokenizer from ${hf_tokenizer_dir}"
        ${python} -m espnet2.bin.ualm_text_tokenizer \
            --hf_tokenizer_dir "${hf_tokenizer_dir}" --output_dir "${text_tokenizer_dir}"
    else
        log "Stage 3: sentencepiece BPE (${bpe_vocab_size}) on the training texts"
        opts=""
        for dset in $(train_sets); do opts+=" --data_dir dump/audio/${dset}"; done
        [ -n "${opts}" ] || die "no train data directory (in ${datasets_config}) for the tokenizer"
        # shellcheck disable=SC2086
        ${python} -m espnet2.bin.ualm_text_tokenizer ${opts} \
            --vocab_size "${bpe_vocab_size}" --output_dir "${text_tokenizer_dir}"
    fi
fi

if [ "${stage}" -le 4 ] && [ "${stop_stage}" -ge 4 ]; then
    log "Stage 4a: codec fitting and reconstruction check -> ${codec_dir}"
    opts=""
    for dset in $(train_sets); do
        [ ! -f "dump/audio/${dset}/wav.scp" ] || opts+=" --train_scp dump/audio/${dset}/wav.scp"
    done
    for dset in $(valid_sets); do
        [ ! -f "dump/audio/${dset}/wav.scp" ] || opts+=" --valid_scp dump/audio/${dset}/wav.scp"
    done
    if [ -f "${codec_dir}/config.json" ] && [ -f "${codec_dir}/metrics.json" ]; then
        log "  ${codec_dir} already fitted; remove it to fit again"
    else
        # shellcheck disable=SC2086
        ${python} -m espnet2.bin.ualm_fit_codec --codec_config "${codec_config}" \
            ${opts} --output_dir "${codec_dir}" ${codec_fit_opts}
    fi

    log "Stage 4b: tokenization (${nj} jobs per dataset, resumable)"
    for dset in $(data_dirs); do
        [ -f "dump/audio/${dset}/wav.scp" ] || continue
        tokenize_dir "${dset}"
    done
fi

# $1 datasets config, $2 audio root, $3 codes root, $4 output dir: manifests
# and length statistics (stage 5; stage 15 for the pairs).
make_manifests() {
    local audio_input_frame_rate
    # the encoder frames per second of the length statistics: the training
    # config's audio encoder says (espnet2/bin/ualm_encoder_geometry.py)
    # shellcheck disable=SC2086
    audio_input_frame_rate=$(${python} -m espnet2.bin.ualm_encoder_geometry \
        --config "${train_unified_config}" ${train_args}) \
        || die "no audio encoder frame rate from ${train_unified_config}"
    # shellcheck disable=SC2086
    ${python} -m espnet2.bin.ualm_make_manifests --datasets "$1" \
        --audio_root "$2" --codes_root "$3" \
        --text_tokenizer "${text_tokenizer_dir}" --out_dir "$4" \
        --audio_input_frame_rate "${audio_input_frame_rate}" ${task_opts}
}

if [ "${stage}" -le 5 ] && [ "${stop_stage}" -ge 5 ]; then
    log "Stage 5: manifests and length statistics -> dump/manifests"
    make_manifests "${datasets_config}" dump/audio dump/codec dump/manifests
fi

train_stage() {
    # $1 config, $2 output dir, then extra options. --resume continues a killed run.
    # Manifests: ${manifests} (stage 5's; stages 15-16 set the pairs' own).
    local config=$1 out=$2 manifests=${manifests:-dump/manifests}; shift 2
    [ -f "${config}" ] || die "training config ${config} not found"
    # shellcheck disable=SC2086
    ${train_launcher:-${python}} -m espnet2.bin.ualm_train --config "${config}" --ngpu "${ngpu}" \
        --resume true --text_tokenizer "${text_tokenizer_dir}" \
        --train_manifest_dir "${manifests}/train" \
        --valid_manifest_dir "${manifests}/valid" \
        --output_dir "${out}" "$@" ${task_opts} ${train_args}
    # the loss curves, drawn once (the mini configs set use_matplotlib: false:
    # ESPnet redraws them every epoch, 2-3 s each time)
    ${python} -m espnet2.bin.ualm_plot_curves --exp_dir "${out}"
}

# Stage 8: enhancer
# The Enhancement VAE (16 kHz mono codec output -> 48 kHz stereo), trained with
# ESPnet's GANTrainer on the 48 kHz stereo masters of every training set that
# has them (wav48.scp, kept by stage 2) and evaluated against plain resampling
# on the held-out masters of every test set (splits: the datasets config).
# Pairs: the codec round trip of each master, cached once in
# dump/enhancer/<dataset>/.
master_sets() {
    local d
    for d in $(data_dirs); do
        [ ! -s "dump/audio/${d}/wav48.scp" ] || echo "${d}"
    done
}
# $1 train|valid|test: the sets of that split with masters.
split_masters() {
    local d
    for d in $(split_sets "$1"); do
        [ ! -s "dump/audio/${d}/wav48.scp" ] || echo "${d}"
    done
}

# $1 train|valid: one scp pair for ESPnet from the cached pairs of those sets.
enhancer_data() {
    local split=$1 out=${enhancer_exp}/data/$1 d
    mkdir -p "${out}"
    : > "${out}/wav48.scp"; : > "${out}/codec_wav.scp"
    for d in $(split_masters "${split}"); do
        cat "dump/enhancer/${d}/wav48.scp" >> "${out}/wav48.scp"
        cat "dump/enhancer/${d}/codec_wav.scp" >> "${out}/codec_wav.scp"
    done
    [ -s "${out}/wav48.scp" ] || return 0
    echo "--${split}_data_path_and_name_and_type ${out}/wav48.scp,target,sound" \
        "--${split}_data_path_and_name_and_type ${out}/codec_wav.scp,input,sound" \
        "--${split}_shape_file ${out}/wav48.scp"
}

run_enhancer_stage() {
    log "Stage 8: enhancer (${enhancer_config}) -> ${enhancer_exp}"
    [ -f "${enhancer_config}" ] || die "enhancer config ${enhancer_config} not found"
    if [ -z "$(master_sets)" ]; then
        log "  no data set has 48 kHz masters (wav48.scp): nothing to train the enhancer on"
    else
        local dset out train_opts valid_opts
        for dset in $(master_sets); do
            out=dump/enhancer/${dset}
            # kept when its masters and codec are unchanged (info.json says)
            # shellcheck disable=SC2046
            ${python} -m espnet2.ualm.enhancer.prepare_pairs \
                --wav48_scp "dump/audio/${dset}/wav48.scp" \
                --codec_config "${codec_config}" $(codec_model_opt) \
                --enhancer_config "${enhancer_config}" \
                --output_dir "${out}" --nj "${nj}"
        done
        train_opts=$(enhancer_data train)
        valid_opts=$(enhancer_data valid)
        [ -n "${train_opts}" ] && [ -n "${valid_opts}" ] \
            || die "the enhancer needs a train and a valid set (${datasets_config}) with 48 kHz masters (wav48.scp)"
        # shellcheck disable=SC2086
        ${python} -m espnet2.bin.ualm_enhancer_train --config "${enhancer_config}" \
            --ngpu "${ngpu}" --resume true --output_dir "${enhancer_exp}" \
            ${train_opts} ${valid_opts} ${enhancer_args}
        for dset in $(split_masters test); do
            ${python} -m espnet2.bin.ualm_enhancer_eval --exp_dir "${enhancer_exp}" \
                --wav48_scp "dump/enhancer/${dset}/wav48.scp" \
                --input_scp "dump/enhancer/${dset}/codec_wav.scp" --name "${dset}"
        done
        log "  evaluation table: ${enhancer_exp}/RESULTS.md"
    fi
}

# Stage 8 needs only stages 2 and 4, and LM training (stages 6-7) keeps one
# core busy (OMP_NUM_THREADS=1): with --enhancer_in_background true the
# enhancer trains on the other core meanwhile; stage 8 then waits for it.
# When the enhancer is done it writes the cores this job may use into
# ${lm_threads_file}, and the LM takes those threads from its next epoch on
# (ualm_train --num_threads_file). nproc without OMP_NUM_THREADS, which it
# would report instead.
enhancer_pid=""
enhancer_log=${enhancer_exp}/stage8.log
lm_threads_file=${enhancer_exp}/lm_num_threads
if [ "${enhancer_in_background}" = true ] && [ "${stage}" -le 7 ] \
        && [ "${stop_stage}" -ge 8 ]; then
    mkdir -p "${enhancer_exp}"
    rm -f "${lm_threads_file}"
    train_args+=" --num_threads_file ${lm_threads_file}"
    log "Stage 8: enhancer starts in the background beside stages 6-7 (log ${enhancer_log})"
    # Its own process group (job control on for this one job), so that a failed
    # or interrupted run stops the whole job, the python it is running included.
    set -m
    # (a list, not "&&": errexit must stay on inside run_enhancer_stage)
    {
        run_enhancer_stage
        # written whole, then renamed: the LM never reads a half-written file
        env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc > "${lm_threads_file}.tmp"
        mv "${lm_threads_file}.tmp" "${lm_threads_file}"
    } \
        > "${enhancer_log}" 2>&1 < /dev/null &
    enhancer_pid=$!
    set +m
    trap 'kill -- -"${enhancer_pid}" 2>/dev/null || true' EXIT
fi

if [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 6 ]; then
    log "Stage 6: modality alignment (${train_align_config}) -> ${align_exp}"
    train_stage "${train_align_config}" "${align_exp}"
fi

if [ "${stage}" -le 7 ] && [ "${stop_stage}" -ge 7 ]; then
    log "Stage 7: unified training (${train_unified_config}) -> ${unified_exp}"
    [ -f "${align_exp}/valid.loss.best.pth" ] || die "run stage 6 first: ${align_exp}/valid.loss.best.pth missing"
    # shellcheck disable=SC2086
    train_stage "${train_unified_config}" "${unified_exp}" \
        --init_param "${align_exp}/valid.loss.best.pth" ${train_unified_args}
fi

if [ "${stage}" -le 8 ] && [ "${stop_stage}" -ge 8 ]; then
    if [ -n "${enhancer_pid}" ]; then
        log "Stage 8: waiting for the enhancer (running in the background since stage 6; log ${enhancer_log})"
        wait "${enhancer_pid}" || die "stage 8 (enhancer, in the background) failed: see ${enhancer_log}"
        trap - EXIT
        tail -n 12 "${enhancer_log}"
        log "  stage 8 finished in the background: ${enhancer_exp}"
    else
        run_enhancer_stage
    fi
fi

# ----- inference, scoring, packing -------------------------------------------
packed_dir=${packed_dir:-${unified_exp}/packed}
pack_archive=${pack_archive:-${unified_exp}/${model_name}.zip}
inference_tag=${inference_tag:-$(basename "${decode_config}" .yaml)}
decode_dir=${unified_exp}/${inference_tag}

# "<data dir> <task>" of every set to decode, from the datasets config: each
# dataset's test directories (<data>_test, or its dirs: test:), or the sets
# --test_sets names (any split, e.g. mini_sound_valid to choose decoding
# settings on held-out data: a set belongs to a dataset that lists it in its
# dirs:, or, without dirs:, whose name starts with <data>_).
decode_pairs() {
    ${python} - "${datasets_config}" "${inference_tasks}" "${test_sets}" << 'PY'
import sys
from espnet2.ualm.data.datasets_config import decode_sets, load_datasets_config
conf = load_datasets_config(sys.argv[1])
for dset, task in decode_sets(conf, sys.argv[2].split(), sys.argv[3].split()):
    print(dset, task)
PY
}

# Stages 9-11 of one model: $1 its experiment dir, $2 its packed dir.
pack_model() {
    local exp=$1 packed=$2 opts=""
    [ -f "${exp}/valid.loss.best.pth" ] || die "${exp}/valid.loss.best.pth missing: train it first"
    [ ! -f "${codec_dir}/config.json" ] || opts+=" --codec_model_dir ${codec_dir}"
    [ ! -f "${enhancer_exp:-/nonexistent}/config.yaml" ] || opts+=" --enhancer_exp ${enhancer_exp}"
    [ ! -f "${decode_config}" ] || opts+=" --decode_config ${decode_config}"
    # shellcheck disable=SC2086
    ${python} -m espnet2.bin.ualm_pack --out_dir "${packed}" \
        --train_config "${exp}/config.yaml" \
        --model_file "${exp}/valid.loss.best.pth" \
        --text_tokenizer "${text_tokenizer_dir}" --codec_config "${codec_config}" \
        --model_name "${model_name}" ${opts}
}

# $1 packed dir, $2 decode config, $3 decode dir: every "<data dir> <task>"
# of decode_pairs decoded into $3/<task>/<data dir>.
decode_model() {
    local packed=$1 config=$2 dir=$3 pair dset task out opts
    [ -f "${packed}/ualm.yaml" ] || die "${packed}/ualm.yaml missing: run stage 9 (or 17) first"
    # An array, not a pipe into the loop: run.pl would read the loop's stdin.
    mapfile -t pairs < <(decode_pairs)
    [ "${#pairs[@]}" -gt 0 ] || die "nothing to decode: no test set of ${datasets_config} for --inference_tasks '${inference_tasks}' --test_sets '${test_sets}'"
    for pair in "${pairs[@]}"; do
        read -r dset task <<< "${pair}"
        [ -d "dump/audio/${dset}" ] || die "test set dump/audio/${dset} missing (stage 2)"
        out=${dir}/${task}/${dset}
        log "  ${task} on ${dset} -> ${out}"
        # the clarifying dialogue (tokens/tasks.py DIALOGUE_TEMPLATE): a batch job
        # has no person to answer, the data dir's simulated user does
        opts=""
        case "${task}" in clarifying_dialogue|dialogue) opts="--simulated_user" ;; esac
        # shellcheck disable=SC2086
        ${train_cmd} JOB=1:"${inference_nj}" "${out}/logdir/inference.JOB.log" \
            ${python} -m espnet2.bin.ualm_inference --model "${packed}" \
                --task "${task}" --data_dir "dump/audio/${dset}" --output_dir "${out}" \
                --decode_config "${config}" --device "${device}" \
                --job JOB --num_jobs "${inference_nj}" ${task_opts} ${opts} \
            || die "inference of ${task} on ${dset} failed; logs in ${out}/logdir (re-run resumes)"
        ${python} -m espnet2.bin.ualm_inference --merge --output_dir "${out}" \
            --num_jobs "${inference_nj}"
    done
}

# $1 packed dir, $2 decode config, $3 decode dir -> $3/scores/RESULTS.md
score_model() {
    local packed=$1 config=$2 dir=$3 opts="" dset task
    while read -r dset task; do
        opts+=" --eval ${task} ${dir}/${task}/${dset} dump/audio/${dset}"
    done < <(decode_pairs)
    [ -n "${opts}" ] || die "nothing to score: no test set in ${datasets_config}"
    # generated speech (tts): round-trip WER through the packed model's own ASR
    # (not independent); ualm_score loads it only for tasks scored as speech
    if [ -f "${packed}/ualm.yaml" ]; then
        opts+=" --asr_model ${packed} --asr_device ${device}"
    fi
    # shellcheck disable=SC2086
    ${python} -m espnet2.bin.ualm_score --output_dir "${dir}/scores" \
        --decode_config "${config}" ${opts} ${task_opts} ${score_opts}
}

if [ "${stage}" -le 9 ] && [ "${stop_stage}" -ge 9 ]; then
    log "Stage 9: packed model directory -> ${packed_dir}"
    [ -f "${unified_exp}/valid.loss.best.pth" ] || die "run stage 7 first: ${unified_exp}/valid.loss.best.pth missing"
    pack_model "${unified_exp}" "${packed_dir}"
fi

if [ "${stage}" -le 10 ] && [ "${stop_stage}" -ge 10 ]; then
    log "Stage 10: inference (${decode_config}, ${inference_nj} jobs) -> ${decode_dir}"
    [ -f "${packed_dir}/ualm.yaml" ] || die "run stage 9 first: ${packed_dir}/ualm.yaml missing"
    decode_model "${packed_dir}" "${decode_config}" "${decode_dir}"
fi

if [ "${stage}" -le 11 ] && [ "${stop_stage}" -ge 11 ]; then
    log "Stage 11: scoring -> ${decode_dir}/scores/RESULTS.md"
    score_model "${packed_dir}" "${decode_config}" "${decode_dir}"
    cat "${decode_dir}/scores/RESULTS.md"
fi

if [ "${stage}" -le 12 ] && [ "${stop_stage}" -ge 12 ]; then
    log "Stage 12: pack -> ${pack_archive} (model card with the results)"
    opts=""
    [ ! -f "${decode_dir}/scores/RESULTS.md" ] || opts+=" --results ${decode_dir}/scores/RESULTS.md"
    # shellcheck disable=SC2086
    ${python} -m espnet2.bin.ualm_pack --out_dir "${packed_dir}" \
        --archive "${pack_archive}" ${opts}
fi

if [ "${stage}" -le 13 ] && [ "${stop_stage}" -ge 13 ]; then
    if [ -z "${hf_repo}" ]; then
        log "Stage 13: upload skipped (give --hf_repo owner/name and set HF_TOKEN)"
    else
        log "Stage 13: upload ${packed_dir} -> https://huggingface.co/${hf_repo}"
        ${python} -m espnet2.bin.ualm_upload --pretrained_dir "${packed_dir}" \
            --repo_id "${hf_repo}"
    fi
fi

# ----- post-training of generation (stages 14-18) ------------------------------
# The paper's recipe (spec section 3): preference pairs from the unified model's
# own samples, a short plain-CE adaptation on the winners (without it the DPO
# loss spikes), then DPO against that adapted model as the frozen reference.
pair_decode_config=${pair_decode_config:-${decode_config}}
winners_best=${winners_exp}/valid.loss.best.pth

# The data dirs of every split of datasets config $1, sorted.
config_dirs() {
    ${python} - "$1" << 'PY'
import sys
from espnet2.ualm.data.datasets_config import load_datasets_config, split_dirs
conf = load_datasets_config(sys.argv[1])
print("\n".join(sorted({d for s in conf["splits"] for d in split_dirs(conf, s)})))
PY
}

# $1 a post-training config (training keys only) -> $2: it with the model part
# of stage 7's config.yaml (MODEL_CONFIG_KEYS), so the post-trained model has
# the unified model's shape by construction; its model_conf entries override.
post_config() {
    mkdir -p "$(dirname "$2")"
    ${python} - "$1" "${unified_exp}/config.yaml" "$2" << 'PY' || exit 1
import sys
import yaml
from espnet2.ualm.data.safe_io import read_yaml
from espnet2.ualm.model.factory import with_model_of
try:
    merged = with_model_of(read_yaml(sys.argv[1]) or {}, read_yaml(sys.argv[2]))
except ValueError as e:
    sys.exit(f"ualm.sh: Error: {sys.argv[1]}: {e}")
with open(sys.argv[3], "w", encoding="utf-8") as f:
    yaml.safe_dump(merged, f, sort_keys=False)
PY
}

# Stage 14 (and 22): $1 packed model, $2 pairs root, $3 scorer config, $4 most
# prompts per data dir: preference pairs of the prompts of every data dir of
# ${pairs_datasets_config} in $2/<dir> (prompts: dump/audio/<dir>/text).
pairs_of() {
    local packed=$1 root=$2 scorer=$3 max_prompts=$4 dset out
    [ -f "${packed}/ualm.yaml" ] || die "${packed}/ualm.yaml missing: pack the model first"
    [ -f "${scorer}" ] || die "pair scorer config ${scorer} not found"
    for dset in $(config_dirs "${pairs_datasets_config}"); do
        [ -s "dump/audio/${dset}/text" ] || die "dump/audio/${dset}/text missing (stage 2): no prompts"
        out=${root}/${dset}
        log "  ${dset} -> ${out}"
        ${train_cmd} JOB=1:"${nj}" "${out}/logdir/pairs.JOB.log" \
            ${python} -m espnet2.bin.ualm_make_pairs --model "${packed}" \
                --data_dir "dump/audio/${dset}" --output_dir "${out}" \
                --scorer_config "${scorer}" \
                --decode_config "${pair_decode_config}" \
                --num_candidates "${pair_num_candidates}" --margin "${pair_margin}" \
                --max_prompts "${max_prompts}" --device "${device}" \
                --job JOB --num_jobs "${nj}" \
            || die "pairs of ${dset} failed; logs in ${out}/logdir (re-run skips finished shards)"
        ${python} -m espnet2.bin.ualm_make_pairs --merge --output_dir "${out}" --num_jobs "${nj}"
    done
}

# Stage 15 (and 22): $1 initial checkpoint, $2 pairs root, $3 their manifests
# dir, $4 output dir: the manifests of the pairs, then CE on the winners.
winners_of() {
    make_manifests "${pairs_datasets_config}" "$2" "$2" "$3"
    [ -f "${train_winners_config}" ] || die "training config ${train_winners_config} not found"
    post_config "${train_winners_config}" "$4/train.yaml"
    manifests=$3 train_stage "$4/train.yaml" "$4" --init_param "$1"
}

# Stage 16 (and 22): $1 the winners' model (initial weights and frozen
# reference), $2 the pairs' manifests dir, $3 output dir: DPO.
dpo_of() {
    [ -f "$1" ] || die "$1 missing: train on the winners first"
    [ -f "${train_dpo_config}" ] || die "training config ${train_dpo_config} not found"
    post_config "${train_dpo_config}" "$3/train.yaml"
    manifests=$2 train_stage "$3/train.yaml" "$3" \
        --init_param "$1" --preference_conf "reference=$1"
}

if [ "${stop_stage}" -ge 14 ] && [ "${stage}" -le 22 ]; then
    [ -f "${pairs_datasets_config}" ] || die "pairs datasets config ${pairs_datasets_config} not found"
fi

if [ "${stage}" -le 14 ] && [ "${stop_stage}" -ge 14 ]; then
    log "Stage 14: preference pairs (${pair_num_candidates} candidates per prompt, ${pair_scorer_config}) -> dump/pairs"
    [ -f "${packed_dir}/ualm.yaml" ] || die "run stage 9 first: ${packed_dir}/ualm.yaml missing"
    pairs_of "${packed_dir}" dump/pairs "${pair_scorer_config}" "${pair_max_prompts}"
fi

if [ "${stage}" -le 15 ] && [ "${stop_stage}" -ge 15 ]; then
    log "Stage 15: manifests of the pairs -> dump/manifests_pairs; CE on the winners (${train_winners_config}) -> ${winners_exp}"
    [ -f "${unified_exp}/valid.loss.best.pth" ] || die "run stage 7 first: ${unified_exp}/valid.loss.best.pth missing"
    winners_of "${unified_exp}/valid.loss.best.pth" dump/pairs dump/manifests_pairs "${winners_exp}"
fi

if [ "${stage}" -le 16 ] && [ "${stop_stage}" -ge 16 ]; then
    log "Stage 16: DPO (${train_dpo_config}) against ${winners_best} -> ${dpo_exp}"
    [ -f "${winners_best}" ] || die "run stage 15 first: ${winners_best} missing"
    dpo_of "${winners_best}" dump/manifests_pairs "${dpo_exp}"
fi

# The tasks post-trained models are decoded on: those trained on the pairs.
post_tasks() {
    if [ -n "${post_inference_tasks}" ]; then
        echo "${post_inference_tasks}"
        return
    fi
    ${python} - "${pairs_datasets_config}" << 'PY'
import sys
from espnet2.ualm.data.datasets_config import load_datasets_config
from espnet2.ualm.tokens.tasks import TASKS
conf = load_datasets_config(sys.argv[1])
tasks = {e["task"] for e in conf["datasets"]}
print(" ".join(sorted(t for t in tasks if not TASKS.get(t).preference)))
PY
}

if [ "${stage}" -le 17 ] && [ "${stop_stage}" -ge 17 ]; then
    log "Stage 17: ${dpo_exp}: packed (${dpo_exp}/packed), decoded and scored (${dpo_exp}/${inference_tag})"
    inference_tasks=$(post_tasks)
    pack_model "${dpo_exp}" "${dpo_exp}/packed"
    decode_model "${dpo_exp}/packed" "${decode_config}" "${dpo_exp}/${inference_tag}"
    score_model "${dpo_exp}/packed" "${decode_config}" "${dpo_exp}/${inference_tag}"
    cat "${dpo_exp}/${inference_tag}/scores/RESULTS.md"
fi

if [ "${stage}" -le 18 ] && [ "${stop_stage}" -ge 18 ]; then
    log "Stage 18: ablations -> exp/ablation/RESULTS.md"
    inference_tasks=$(post_tasks)
    declare -A models=([unified]=${unified_exp})
    for m in ${ablation_models}; do models[${m%%=*}]=${m#*=}; done
    declare -A configs=([base]=${decode_config})
    for c in ${ablation_configs}; do configs[${c%%=*}]=${c#*=}; done
    runs=""
    for run in unified/base ${ablation_runs}; do
        m=${run%%/*} c=${run#*/}
        [ -n "${models[${m}]:-}" ] || die "--ablation_runs ${run}: no model '${m}' (--ablation_models)"
        [ -n "${configs[${c}]:-}" ] || die "--ablation_runs ${run}: no setting '${c}' (--ablation_configs)"
        exp=${models[${m}]}
        [ -f "${exp}/packed/ualm.yaml" ] || pack_model "${exp}" "${exp}/packed"
        dir=exp/ablation/${m}/${c}
        # the model's own decoding (stages 10-11, 17) when it has one
        if [ "${c}" = base ]; then
            [ "${m}" != unified ] || dir=${decode_dir}
            [ ! -f "${exp}/${inference_tag}/scores/scores.json" ] || dir=${exp}/${inference_tag}
        fi
        log "  ${run} (${exp}, ${configs[${c}]}) -> ${dir}"
        decode_model "${exp}/packed" "${configs[${c}]}" "${dir}"  # finished shards are kept
        # scored again only when a decoding is newer than its scores
        if [ ! -f "${dir}/scores/scores.json" ] \
                || [ -n "$(find "${dir}" -name wav.scp -newer "${dir}/scores/scores.json")" ]; then
            score_model "${exp}/packed" "${configs[${c}]}" "${dir}" > "${dir}/score.log" 2>&1 \
                || die "scoring ${dir} failed: see ${dir}/score.log"
        fi
        runs+=" --run ${run}=${dir}"
    done
    rows=""
    for r in ${ablation_rows}; do rows+=" --row ${r}"; done
    # shellcheck disable=SC2086
    ${python} -m espnet2.bin.ualm_ablation ${runs} --baseline unified/base ${rows} \
        $(for t in ${inference_tasks}; do echo "--task ${t}"; done) --output_dir exp/ablation
    cat exp/ablation/RESULTS.md
fi

# ----- reasoning rounds (stages 19-23, UALM-Reason) ------------------------------
# The paper's post-training of reasoning (spec section 4): SFT on enrichment and
# clarifying dialogues, self-reflection data from that model's own attempts (the
# critique is about mistakes this model makes), a second SFT on it, and a final
# DPO whose pairs are ranked by how well a clip matches the plan. Here the DPO
# round of stages 14-16, when run, comes before round 1 (reason_init).
reason_start() {
    if [ -n "${reason_init}" ]; then
        echo "${reason_init}"
    elif [ -f "${dpo_exp}/valid.loss.best.pth" ]; then
        echo "${dpo_exp}/valid.loss.best.pth"
    else
        echo "${unified_exp}/valid.loss.best.pth"
    fi
}

# $1 datasets config, $2 the infix of the data dirs a stage writes (clarify,
# reflect): each "<dir> <source dir>", <data>_<infix>_<split> from <data>_<split>.
derived_dirs() {
    local d
    for d in $(config_dirs "$1"); do
        case "${d}" in *_"$2"_*) echo "${d} ${d/_$2_/_}" ;; esac
    done
}

if [ "${stage}" -le 19 ] && [ "${stop_stage}" -ge 19 ]; then
    init=$(reason_start)
    log "Stage 19: reasoning SFT 1 (${train_reason_config}: enrichment, clarifying dialogues) from ${init} -> ${reason_exp}"
    [ -f "${init}" ] || die "${init} missing: run stage 7 (or give --reason_init)"
    [ -f "${reason_datasets_config}" ] || die "reasoning datasets config ${reason_datasets_config} not found"
    while read -r dset src; do
        [ -f "dump/audio/${src}/clarify.jsonl" ] || die "dump/audio/${src}/clarify.jsonl missing: ${dset} is written from it"
        ${python} -m espnet2.bin.ualm_prepare_corpus clarify \
            --data_dir "dump/audio/${src}" --out_dir "dump/audio/${dset}"
        # the dialogues' clips are the source's: its codes, by the same ids
        [ ! -L "dump/codec/${dset}" ] || rm "dump/codec/${dset}"
        [ ! -e "dump/codec/${dset}" ] || die "dump/codec/${dset} exists and is not stage 19's link"
        ln -s "${src}" "dump/codec/${dset}"
    done < <(derived_dirs "${reason_datasets_config}" clarify)
    make_manifests "${reason_datasets_config}" dump/audio dump/codec dump/manifests_reason
    [ -f "${train_reason_config}" ] || die "training config ${train_reason_config} not found"
    post_config "${train_reason_config}" "${reason_exp}/train.yaml"
    manifests=dump/manifests_reason train_stage "${reason_exp}/train.yaml" "${reason_exp}" \
        --init_param "${init}"
fi

if [ "${stage}" -le 20 ] && [ "${stop_stage}" -ge 20 ]; then
    log "Stage 20: self-reflection data from ${reason_exp}'s own first attempts (${reflect_attempts}) -> dump/reflection"
    [ -f "${reason_exp}/valid.loss.best.pth" ] || die "run stage 19 first: ${reason_exp}/valid.loss.best.pth missing"
    [ -f "${reflect_datasets_config}" ] || die "self-reflection datasets config ${reflect_datasets_config} not found"
    [ -n "${reflect_attempts}" ] && [ -f "${reflect_attempts}" ] \
        || die "--reflect_attempts '${reflect_attempts}' not found: the setup's script that writes and judges first attempts"
    pack_model "${reason_exp}" "${reason_exp}/packed"
    max_opt=""
    [ "${reflect_max_prompts}" -eq 0 ] || max_opt="--max_items ${reflect_max_prompts}"
    while read -r dset src; do
        [ -s "dump/audio/${src}/rich_text" ] || die "dump/audio/${src}/rich_text missing: the plans of ${dset}"
        out=dump/reflection/${dset}
        if [ "${out}/data/dialogue.jsonl" -nt "${reason_exp}/valid.loss.best.pth" ]; then
            log "  ${dset}: ${out} is newer than the model, kept (remove it to make it again)"
        else
            log "  ${dset}: first attempts at the prompts of ${src} -> ${out}"
            # shellcheck disable=SC2086
            ${python} "${reflect_attempts}" --model "${reason_exp}/packed" \
                --data_dir "dump/audio/${src}" --out_dir "${out}" \
                --decode_config "${pair_decode_config}" --device "${device}" \
                --id_prefix "${dset}" ${max_opt} \
                || die "self-reflection data of ${dset} failed"
        fi
        n_rej=$(($(wc -l < "${out}/rejected.tsv") - 1))
        [ "${n_rej}" -eq 0 ] || log "  ${dset}: ${n_rej} rejected, see ${out}/rejected.tsv"
        # formatted and tokenized as stages 2 and 4 do (the attempts and the clips)
        ${python} -m espnet2.bin.ualm_format_audio \
            --codec_config "${codec_config}" \
            --in_dir "${out}/data" --out_dir "dump/audio/${dset}" \
            --min_sec "${min_sec}" --max_sec "${max_sec}" \
            --audio_format "${audio_format}" --nj "${nj}"
        tokenize_dir "${dset}"
    done < <(derived_dirs "${reflect_datasets_config}" reflect)
fi

if [ "${stage}" -le 21 ] && [ "${stop_stage}" -ge 21 ]; then
    log "Stage 21: reasoning SFT 2 (${train_reflect_config}: self-reflection) from ${reason_exp} -> ${reflect_exp}"
    [ -f "${reason_exp}/valid.loss.best.pth" ] || die "run stage 19 first: ${reason_exp}/valid.loss.best.pth missing"
    make_manifests "${reflect_datasets_config}" dump/audio dump/codec dump/manifests_reflect
    [ -f "${train_reflect_config}" ] || die "training config ${train_reflect_config} not found"
    post_config "${train_reflect_config}" "${reflect_exp}/train.yaml"
    manifests=dump/manifests_reflect train_stage "${reflect_exp}/train.yaml" "${reflect_exp}" \
        --init_param "${reason_exp}/valid.loss.best.pth"
fi

if [ "${stage}" -le 22 ] && [ "${stop_stage}" -ge 22 ]; then
    log "Stage 22: final DPO: pairs of ${reflect_exp} ranked by ${reason_pair_scorer_config} -> dump/pairs_reason, ${reason_winners_exp}, ${reason_dpo_exp}"
    [ -f "${reflect_exp}/valid.loss.best.pth" ] || die "run stage 21 first: ${reflect_exp}/valid.loss.best.pth missing"
    pack_model "${reflect_exp}" "${reflect_exp}/packed"
    max_prompts=${reason_pair_max_prompts}
    [ "${max_prompts}" -ne 0 ] || max_prompts=${pair_max_prompts}
    pairs_of "${reflect_exp}/packed" dump/pairs_reason "${reason_pair_scorer_config}" "${max_prompts}"
    winners_of "${reflect_exp}/valid.loss.best.pth" dump/pairs_reason dump/manifests_pairs_reason \
        "${reason_winners_exp}"
    dpo_of "${reason_winners_exp}/valid.loss.best.pth" dump/manifests_pairs_reason "${reason_dpo_exp}"
fi

if [ "${stage}" -le 23 ] && [ "${stop_stage}" -ge 23 ]; then
    # the final model: stage 22's, else stage 21's; "before": where stage 19 began
    final_exp=${reason_dpo_exp}
    [ -f "${final_exp}/valid.loss.best.pth" ] || final_exp=${reflect_exp}
    before_exp=$(dirname "$(reason_start)")
    ev=${reason_eval_dir}
    log "Stage 23: reasoning evaluation of ${final_exp} (before the rounds: ${before_exp}) -> ${ev}/RESULTS.md"
    [ -f "${reason_eval_datasets_config}" ] || die "reasoning evaluation config ${reason_eval_datasets_config} not found"
    datasets_config=${reason_eval_datasets_config}
    for exp in "${final_exp}" "${before_exp}"; do
        [ -f "${exp}/valid.loss.best.pth" ] || die "${exp}/valid.loss.best.pth missing: run stages 19-21 first"
        [ -f "${exp}/packed/ualm.yaml" ] || pack_model "${exp}" "${exp}/packed"
    done
    inference_tasks=""
    decode_model "${final_exp}/packed" "${decode_config}" "${ev}/final"
    score_model "${final_exp}/packed" "${decode_config}" "${ev}/final" > "${ev}/final/score.log" 2>&1 \
        || die "scoring ${ev}/final failed: see ${ev}/final/score.log"
    inference_tasks="vague_text_to_audio text_to_audio"
    decode_model "${before_exp}/packed" "${decode_config}" "${ev}/before"
    score_model "${before_exp}/packed" "${decode_config}" "${ev}/before" > "${ev}/before/score.log" 2>&1 \
        || die "scoring ${ev}/before failed: see ${ev}/before/score.log"
    inference_tasks=self_reflection
    decode_model "${final_exp}/packed" "${listen_silence_config}" "${ev}/silence"
    # every attempt of the reflection a run of its own (reflection/v<n>/)
    runs="--run final=${ev}/final --run before=${ev}/before"
    rows="--row final@enrichment:final@vague_text_to_audio"
    rows+=" --row final@clarifying_dialogue:final@vague_text_to_audio"
    listen_runs=""
    while read -r dset task; do
        [ "${task}" = self_reflection ] || continue
        for v in 1 2; do
            hyp=${ev}/final/self_reflection/${dset}/reflection/v${v}
            [ -f "${hyp}/wav.scp" ] || continue
            # shellcheck disable=SC2086
            ${python} -m espnet2.bin.ualm_score --output_dir "${ev}/reflect_v${v}/scores" \
                --decode_config "${decode_config}" \
                --eval self_reflection "${hyp}" "dump/audio/${dset}" ${task_opts} ${score_opts} \
                > "${ev}/reflect_v${v}.score.log" 2>&1 \
                || die "scoring ${hyp} failed: see ${ev}/reflect_v${v}.score.log"
            runs+=" --run v${v}=${ev}/reflect_v${v}"
        done
        [ ! -f "${ev}/reflect_v2/scores/scores.json" ] || rows+=" --row v2:v1"
        listen_runs+=" --run heard=${ev}/final/self_reflection/${dset}"
        listen_runs+=" --run silence=${ev}/silence/self_reflection/${dset}"
    done < <(decode_pairs)
    rows+=" --row final@text_to_audio:before@text_to_audio"
    rows+=" --row final@vague_text_to_audio:before@vague_text_to_audio"
    # shellcheck disable=SC2086
    ${python} -m espnet2.bin.ualm_ablation ${runs} --baseline before ${rows} \
        --output_dir "${ev}/ablation"
    cp "${ev}/ablation/RESULTS.md" "${ev}/RESULTS.md"
    if [ -n "${listening_check}" ] && [ -n "${listen_runs}" ]; then
        # shellcheck disable=SC2086
        ${python} "${listening_check}" ${listen_runs} --output_dir "${ev}/listening" > /dev/null
        { echo; cat "${ev}/listening/RESULTS.md"; } >> "${ev}/RESULTS.md"
    fi
    cat "${ev}/RESULTS.md"
fi

log "Successfully finished stages ${stage}-${stop_stage} in ${SECONDS} s"
# The one command that serves the trained model in the web demo (Gradio on
# 127.0.0.1:7860; `make demo` installs Gradio, the optional extra, once).
demo_model=${pack_archive}
[ -f "${demo_model}" ] || demo_model=${packed_dir}
if [ -e "${demo_model}/ualm.yaml" ] || [ -f "${demo_model}" ]; then
    log "Web demo of this model: (cd ${MAIN_ROOT} && make -s -C tools demo" \
        "&& tools/venv/bin/python -m espnet2.bin.ualm_demo --model $(realpath "${demo_model}"))"
fi
