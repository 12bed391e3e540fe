#!/usr/bin/env bash
# The mini recipe: a synthetic corpus that exercises every UALM task, small
# enough to run end to end on a 2-core CPU. Installs what is missing on first use.
#   ./run.sh                                  # all stages, default size
#   ./run.sh --stage 4 --stop_stage 5         # some stages
#   ./run.sh --local_data_opts "--scale 0.05" # a tiny corpus (the integration test)
#   ./run.sh --train_unified_args "--max_epoch 240"
#                                             # the longer setting: stage 7 trains
#                                             # 3.3x as long, about 60 min on 2 cores
#                                             # (RESULTS.md, doc/mini_competence.md)
#   ./run.sh --stage 14 --stop_stage 18       # then post-training: preference pairs,
#                                             # CE on the winners, DPO, ablations
#   ./run.sh --stage 19 --stop_stage 23       # the reasoning rounds (UALM-Reason):
#                                             # SFT on enrichment and dialogues,
#                                             # self-reflection data and SFT, final
#                                             # DPO, exp/reason_eval/RESULTS.md
set -euo pipefail
cd "$(dirname "$0")"

./ualm.sh \
    --nj 2 \
    --codec_config conf/codec.yaml \
    --datasets_config conf/datasets.yaml \
    --max_sec 10 \
    --bpe_vocab_size 1000 \
    --decode_config conf/decode.yaml \
    --model_name ualm_mini \
    --enhancer_in_background true \
    --pair_decode_config conf/decode_pairs.yaml \
    --pair_max_prompts 1000 \
    --reflect_max_prompts 600 \
    --reason_pair_max_prompts 300 \
    --ablation_models "winners=exp/ualm_winners dpo=exp/ualm_dpo" \
    --ablation_configs "cfg1=conf/ablation/cfg1.yaml cfg2=conf/ablation/cfg2.yaml cfg5=conf/ablation/cfg5.yaml best_of4=conf/ablation/best_of4.yaml best_of8=conf/ablation/best_of8.yaml" \
    --ablation_runs "unified/cfg1 unified/cfg2 unified/cfg5 unified/best_of4 unified/best_of8 winners/base dpo/base winners/cfg2 dpo/cfg2" \
    --ablation_rows "unified/base unified/cfg1 unified/cfg2 unified/cfg5 winners/base dpo/base dpo/base:winners/base winners/cfg2 dpo/cfg2 dpo/cfg2:winners/cfg2 unified/best_of4 unified/best_of8" \
    --score_opts "--judge local/judge.py --answer_words corpus/corpus_info.json --probe_train_dir dump/audio/mini_sound_train --caption_train_dir dump/audio/mini_sound_train" \
    "$@"
