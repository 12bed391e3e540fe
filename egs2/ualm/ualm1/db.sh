# Where the real corpora live on this machine, read by local/data.sh.
#
# One variable per corpus, empty by default: fill in those that the corpora
# selected with `local/data.sh --corpora "..."` need (the others may stay
# empty). Write the path after ":-", e.g. CLOTHO="${CLOTHO:-/data/clotho}";
# the form also lets a value given in the environment win
# (CLOTHO=/data/clotho ./run.sh).

# AudioCaps (https://audiocaps.github.io): folder with train.csv, val.csv and
# test.csv (columns audiocap_id,youtube_id,start_time,caption).
AUDIOCAPS="${AUDIOCAPS:-}"
# Downloaded AudioCaps clips: one sub-folder per split (train/ val/ test/) or
# all clips in one folder. Empty: ${AUDIOCAPS}/audio.
AUDIOCAPS_AUDIO="${AUDIOCAPS_AUDIO:-}"

# Clotho v2 (https://zenodo.org/records/4783391): folder with
# clotho_captions_{development,validation,evaluation}.csv and the extracted
# audio folders development/ validation/ evaluation/.
CLOTHO="${CLOTHO:-}"

# LibriSpeech (https://www.openslr.org/12): the LibriSpeech/ folder holding
# train-clean-100/, dev-clean/, ... (or the folder that contains LibriSpeech/).
LIBRISPEECH="${LIBRISPEECH:-}"

# Audio Flamingo 3 / AudioSkills-style conversations: one *.json or *.jsonl
# file, or a folder of them (one data directory per file).
AF3="${AF3:-}"
# Folder the relative "sound" paths start from. Empty: each file's folder.
AF3_AUDIO="${AF3_AUDIO:-}"

# ETTA-style caption JSONL (location/start/end/captions): one file or a
# folder of *.json / *.jsonl files.
ETTA="${ETTA:-}"
# Folder relative "location" paths start from. Empty: each file's folder.
ETTA_AUDIO="${ETTA_AUDIO:-}"

# Text-only instruction data (Alpaca instruction/input/output, chat
# "messages" or ShareGPT "conversations"): one file or a folder of
# *.json / *.jsonl files.
TEXT_INSTRUCT="${TEXT_INSTRUCT:-}"
