# Corpus locations. The mini corpus is generated locally by local/data.sh
# (no downloads), so there is nothing to set here; see ../ualm1/db.sh for the
# real corpora.
MINI_CORPUS="${MINI_CORPUS:-corpus}"   # where the generated audio files go
