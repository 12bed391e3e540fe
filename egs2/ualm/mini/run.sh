#!/usr/bin/env bash
# The mini recipe: a synthetic corpus that exercises every UALM task, small
# enough to run end to end on a 2-core CPU. Installs what is missing on first use.
#   ./run.sh                                  # all stages, default size
#   ./run.sh --stage 4 --stop_stage 5         # some stages
#   ./run.sh --local_data_opts "--scale 0.05" # a tiny corpus (the integration test)
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
    --score_opts "--judge local/judge.py --answer_words corpus/corpus_info.json --probe_train_dir dump/audio/mini_sound_train --caption_train_dir dump/audio/mini_sound_train" \
    "$@"
