#!/usr/bin/env bash
# Stage 1 of the mini recipe: generate the synthetic corpus (seeded, no downloads)
# into data/mini_{sound,speech,text}_{train,valid,test}. Options are passed to
# local/generate_corpus.py, e.g. `--scale 0.05` for a tiny corpus (see its --help).
set -euo pipefail
cd "$(dirname "$0")/.."
. ./db.sh
. ./path.sh
python local/generate_corpus.py --out_dir data --audio_dir "${MINI_CORPUS}" "$@"
