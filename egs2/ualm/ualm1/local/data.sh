#!/usr/bin/env bash
# Stage 1 for real corpora: one data directory per corpus and split, data/<name>/
# (layout: doc/data_layout.md), each with a rejected.tsv listing the items left
# out and why. Corpus locations come from db.sh; run from the recipe directory.
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}
die() {
    log "Error: $*" >&2
    exit 1
}

# Options (--name value, ESPnet style).
corpora="audiocaps clotho"   # any of: audiocaps clotho librispeech af3 etta text_instruct
                             # (spaces or commas between them: "audiocaps,clotho")
audiocaps_splits="train val test"
audiocaps_audio_pattern="{youtube_id}.wav Y{youtube_id}.wav {audiocap_id}.wav"
clotho_splits="development validation evaluation"
clotho_mode=caption          # caption: one utterance per caption; file: one per clip
clotho_caption_index=1       # the caption kept with --clotho_mode file
librispeech_splits="train-clean-100 train-clean-360 train-other-500 dev-clean dev-other test-clean test-other"
librispeech_text_norm=none   # none, lower or sentence
python=python3
log_level=INFO

help_message="Usage: $0 [--corpora \"audiocaps clotho librispeech af3 etta text_instruct\" (or comma-separated)] [--<option> <value>]"

if [ $# -gt 0 ]; then
    # the recipe's own scripts/ link (egs2/ualm/scripts), also in a copied recipe
    parse_options="$(dirname "$0")/../scripts/parse_options.sh"
    [ -f "${parse_options}" ] || die "options need ${parse_options}"
    . "${parse_options}"
fi
recipe_dir=$(cd "$(dirname "$0")/.." && pwd)
db_sh="${recipe_dir}/db.sh"
if [ -f "${recipe_dir}/path.sh" ]; then
    set +u
    . "${recipe_dir}/path.sh"
    set -u
fi
[ -f "${db_sh}" ] || die "${db_sh} not found"
. "${db_sh}"

corpora=${corpora//,/ }   # ualm.sh passes --local_data_opts word-split: commas keep one word
known="audiocaps clotho librispeech af3 etta text_instruct"
declare -A path_var=(
    [audiocaps]=AUDIOCAPS [clotho]=CLOTHO [librispeech]=LIBRISPEECH
    [af3]=AF3 [etta]=ETTA [text_instruct]=TEXT_INSTRUCT
)

# Check every corpus name and needed path before converting anything.
for corpus in ${corpora}; do
    [ -n "${path_var[${corpus}]:-}" ] || die "unknown corpus '${corpus}' in --corpora (known: ${known})"
done
for corpus in ${corpora}; do
    var=${path_var[${corpus}]}
    value=${!var:-}
    [ -n "${value}" ] || die "${var} is empty: set it in ${db_sh} to the ${corpus} corpus location (needed by --corpora \"${corpora}\")"
    [ -e "${value}" ] || die "${var}=${value} (set in ${db_sh}) does not exist"
done

prepare() {  # prepare <corpus> <name> [options]: data/<name> from one corpus split
    local corpus=$1 name=$2
    shift 2
    log "${corpus} -> data/${name}"
    "${python}" -m espnet2.bin.ualm_prepare_corpus "${corpus}" \
        --out_dir "data/${name}" --log_level "${log_level}" "$@" < /dev/null
}

json_files() {  # json_files <file or folder>: the *.json / *.jsonl files it names
    if [ -d "$1" ]; then
        find "$1" -maxdepth 1 -type f \( -name '*.json' -o -name '*.jsonl' \) | sort
    else
        echo "$1"
    fi
}

prepare_json_corpus() {  # prepare_json_corpus <corpus> <name prefix> <file or folder> [<audio dir>]
    local corpus=$1 prefix=$2 src=$3 audio_dir=${4:-} files file stem name
    local audio_opts=()
    if [ -n "${audio_dir}" ]; then
        audio_opts=(--audio_dir "${audio_dir}")
    fi
    files=$(json_files "${src}")
    [ -n "${files}" ] || die "no *.json or *.jsonl file in ${src}"
    while read -r file; do
        stem=$(basename "${file}")
        name="${prefix}_${stem%.*}"
        name=${name//[^A-Za-z0-9_]/_}
        prepare "${corpus}" "${name}" --json "${file}" --id_prefix "${name}" "${audio_opts[@]}"
    done <<< "${files}"
}

for corpus in ${corpora}; do
    case ${corpus} in
        audiocaps)
            audio_root=${AUDIOCAPS_AUDIO:-${AUDIOCAPS}/audio}
            read -r -a patterns <<< "${audiocaps_audio_pattern}"
            for split in ${audiocaps_splits}; do
                audio_dir=${audio_root}
                if [ -d "${audio_root}/${split}" ]; then
                    audio_dir="${audio_root}/${split}"
                fi
                prepare audiocaps "audiocaps_${split}" --csv "${AUDIOCAPS}/${split}.csv" \
                    --audio_dir "${audio_dir}" --audio_pattern "${patterns[@]}"
            done
            ;;
        clotho)
            for split in ${clotho_splits}; do
                prepare clotho "clotho_${split}" \
                    --csv "${CLOTHO}/clotho_captions_${split}.csv" --audio_dir "${CLOTHO}/${split}" \
                    --mode "${clotho_mode}" --caption_index "${clotho_caption_index}"
            done
            ;;
        librispeech)
            root=${LIBRISPEECH}
            if [ -d "${root}/LibriSpeech" ]; then
                root="${root}/LibriSpeech"
            fi
            for split in ${librispeech_splits}; do
                prepare librispeech "librispeech_${split//-/_}" --root "${root}" \
                    --split "${split}" --text_norm "${librispeech_text_norm}"
            done
            ;;
        af3) prepare_json_corpus af3 af3 "${AF3}" "${AF3_AUDIO}" ;;
        etta) prepare_json_corpus etta etta "${ETTA}" "${ETTA_AUDIO}" ;;
        text_instruct) prepare_json_corpus text_instruct text "${TEXT_INSTRUCT}" ;;
    esac
done
log "Successfully finished. [elapsed=${SECONDS}s]"
