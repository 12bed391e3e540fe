#!/usr/bin/env bash
# UALM on real corpora with a Qwen2.5 backbone on GPUs (spec section 3):
# AudioCaps and Clotho (text-to-audio, captioning) and LibriSpeech (ASR, TTS)
# by default, X-codec tokens, a frozen Whisper-large-v3 encoder, both training
# stages through ESPnet's Trainer under torchrun, then inference, scoring and
# packing. Nothing is downloaded; before the first run set
#   - db.sh: where the corpora are (AUDIOCAPS, CLOTHO, LIBRISPEECH, ...);
#   - conf/codec.yaml: model_dir, a local X-codec (XcodecModel.save_pretrained);
#   - QWEN_DIR and WHISPER_DIR (environment, or the defaults below): local
#     Qwen2.5 and Whisper-large-v3 checkpoints (save_pretrained directories).
#
#   ./run.sh                                # every stage, Qwen2.5-1.5B, NGPU GPUs
#   ./run.sh --stage 10 --stop_stage 11     # decode and score again
#   ./run.sh --train_align_config conf/train_align_qwen2.5_7b.yaml \
#       --train_unified_config conf/train_unified_qwen2.5_7b.yaml   # Qwen2.5-7B
#   ./run.sh --local_data_opts "--corpora audiocaps,clotho,librispeech,af3"
#                                           # more corpora: add them to conf/datasets.yaml
#   ./run.sh --stage 11 --score_opts "--fd_model openl3 --kl_model passt \
#       --is_model panns --clap_model clap --clap_model_conf checkpoint=/models/clap.pt ..."
#                                           # the paper's metrics, from local checkpoints
#                                           # (espnet2/bin/ualm_score.py --help)
# Post-training (stages 14-18: pairs scored by CLAP from /models/clap-htsat-unfused,
# conf/pair_scorer.yaml; CE on the winners; DPO; ablations): ./run.sh --stage 14 --stop_stage 18
# Later options win over the ones below (ualm.sh --help lists them all).
set -euo pipefail
cd "$(dirname "$0")"

qwen_dir=${QWEN_DIR:-/models/Qwen2.5-1.5B}
whisper_dir=${WHISPER_DIR:-/models/whisper-large-v3}
ngpu=${NGPU:-8}   # GPUs of this node, one training process each

./ualm.sh \
    --nj 16 \
    --local_data_opts "--corpora audiocaps,clotho,librispeech" \
    --codec_config conf/codec.yaml \
    --datasets_config conf/datasets.yaml \
    --max_sec 30 \
    --master_fs enhancer \
    --hf_tokenizer_dir "${qwen_dir}" \
    --ngpu 1 \
    --train_launcher "torchrun --nproc_per_node ${ngpu}" \
    --train_align_config conf/train_align_qwen2.5_1.5b.yaml \
    --train_unified_config conf/train_unified_qwen2.5_1.5b.yaml \
    --train_args "--multiprocessing_distributed false --dist_backend nccl --backbone_conf pretrained_dir=${qwen_dir} --audio_encoder_conf pretrained_dir=${whisper_dir}" \
    --enhancer_config conf/enhancer.yaml \
    --decode_config conf/decode.yaml \
    --inference_nj 8 \
    --model_name ualm_qwen2.5_1.5b \
    --score_opts "--kl_model none --is_model none" \
    --pair_scorer_config conf/pair_scorer.yaml \
    --ablation_configs "cfg1=conf/ablation/cfg1.yaml best_of4=conf/ablation/best_of4.yaml" \
    --ablation_models "winners=exp/ualm_winners dpo=exp/ualm_dpo" \
    --ablation_runs "unified/cfg1 unified/best_of4 winners/base dpo/base" \
    "$@"
