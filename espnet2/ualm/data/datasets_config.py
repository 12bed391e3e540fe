"""The datasets config of a recipe (``conf/datasets.yaml``): which task reads
which data directory in which split.

    splits: [train, valid, test]
    datasets:                      # data dir = <data>_<split>
      - {data: mini_sound, task: text_to_audio}
      # corpora whose directories are named otherwise: ``dirs`` names them per
      # split (one name or a list; a split it leaves out has none of this data)
      - data: librispeech
        task: asr
        dirs:
          train: [librispeech_train_clean_100, librispeech_train_clean_360]
          valid: librispeech_dev_clean
          test: librispeech_test_clean

Stage 5 (``ualm_make_manifests``) writes one manifest per entry, split and
directory; ``ualm.sh`` lists the training, validation and test directories
from it. Only yaml is imported here, so the shell helpers start fast.
"""

from typing import Collection, List, Mapping, Optional, Sequence, Tuple

import yaml


def load_datasets_config(
    path: str, known_tasks: Optional[Collection[str]] = None
) -> dict:
    """The config at ``path``, checked (``known_tasks``: the task names allowed;
    ``None``: not checked here), with ``splits`` defaulted."""
    with open(path, encoding="utf-8") as f:
        conf = yaml.safe_load(f) or {}
    if not isinstance(conf.get("datasets"), list) or not conf["datasets"]:
        raise ValueError(f"{path}: needs a non-empty 'datasets:' list")
    for i, entry in enumerate(conf["datasets"]):
        if not isinstance(entry, dict) or {"data", "task"} - set(entry):
            raise ValueError(f"{path}: datasets[{i}] needs 'data' and 'task'")
        if known_tasks is not None and entry["task"] not in known_tasks:
            raise ValueError(
                f"{path}: datasets[{i}] has unknown task {entry['task']!r}; "
                f"known: {sorted(known_tasks)}"
            )
    conf.setdefault("splits", ["train", "valid", "test"])
    for i, entry in enumerate(conf["datasets"]):
        dirs = entry.get("dirs")
        if dirs is None:
            continue
        where = f"{path}: datasets[{i}] ({entry['data']}, {entry['task']}): dirs"
        if not isinstance(dirs, dict):
            raise ValueError(f"{where} must map splits to directory names")
        unknown = sorted(set(dirs) - set(conf["splits"]))
        if unknown:
            raise ValueError(f"{where} names splits {unknown} not in {conf['splits']}")
        for split, names in dirs.items():
            names = [names] if isinstance(names, str) else names
            if not (
                isinstance(names, list)
                and names
                and all(isinstance(n, str) and n for n in names)
            ):
                raise ValueError(
                    f"{where}.{split} must be a directory name or a list of them, "
                    f"got {dirs[split]!r}"
                )
    for split in conf["splits"]:
        names = [
            name
            for entry in conf["datasets"]
            for _, name in manifest_dirs(entry, split)
        ]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{path}: split {split} repeats manifests {repeated}")
    return conf


def dataset_dirs(entry: Mapping, split: str) -> List[str]:
    """The data directories of a ``datasets`` entry in ``split``: its
    ``dirs[split]`` when it has ``dirs`` (none for a split left out), else
    ``<data>_<split>``."""
    dirs = entry.get("dirs")
    if dirs is None:
        return [f"{entry['data']}_{split}"]
    names = dirs.get(split, [])
    return [names] if isinstance(names, str) else list(names)


def dataset_name(entry: Mapping) -> str:
    """``<data>_<task>``: the name of a ``datasets`` entry in every split (its
    manifests are named so, or ``<data>_<task>-<directory>`` for a list)."""
    return f"{entry['data']}_{entry['task']}"


def manifest_dirs(entry: Mapping, split: str) -> List[Tuple[str, str]]:
    """``(data directory, manifest name)`` of a ``datasets`` entry in ``split``."""
    dirs = dataset_dirs(entry, split)
    name = dataset_name(entry)
    if len(dirs) == 1:
        return [(dirs[0], name)]
    return [(d, f"{name}-{d}") for d in dirs]


def split_dirs(conf: Mapping, split: str) -> List[str]:
    """Every data directory of ``split``, sorted (each once)."""
    return sorted({n for entry in conf["datasets"] for n in dataset_dirs(entry, split)})


def _entry_has_set(conf: Mapping, entry: Mapping, name: str) -> bool:
    """Whether data directory ``name`` (any split) belongs to ``entry``."""
    if "dirs" in entry:
        return any(name in dataset_dirs(entry, split) for split in conf["splits"])
    return name.startswith(entry["data"] + "_")


def unknown_tasks(conf: Mapping, tasks: Sequence[str]) -> List[str]:
    """The names of ``tasks`` that no ``datasets`` entry has."""
    known = {entry["task"] for entry in conf["datasets"]}
    return [t for t in tasks if t not in known]


def unknown_sets(conf: Mapping, sets: Sequence[str]) -> List[str]:
    """The data directories of ``sets`` that belong to no ``datasets`` entry."""
    return [
        s
        for s in sets
        if not any(_entry_has_set(conf, entry, s) for entry in conf["datasets"])
    ]


def decode_sets(
    conf: Mapping, tasks: Sequence[str] = (), sets: Sequence[str] = ()
) -> List[Tuple[str, str]]:
    """``(data directory, task)`` pairs to decode (stages 10-11 of ``ualm.sh``).

    Default: each entry's test directories. ``tasks``: only these tasks.
    ``sets``: these directories instead (any split), each with the tasks of
    the entries it belongs to: listed in an entry's ``dirs``, or, for an
    entry without ``dirs``, named ``<data>_<anything>``.
    An unknown task or set is a ``ValueError`` (it would decode nothing).
    """
    for what, bad in (
        ("task", unknown_tasks(conf, tasks)),
        ("set", unknown_sets(conf, sets)),
    ):
        if bad:
            raise ValueError(f"{what} {bad[0]!r} is in no entry of the datasets config")
    pairs = []
    for entry in conf["datasets"]:
        if tasks and entry["task"] not in tasks:
            continue
        if not sets:
            chosen = dataset_dirs(entry, "test")
        else:
            chosen = [s for s in sets if _entry_has_set(conf, entry, s)]
        pairs.extend((name, entry["task"]) for name in chosen)
    return pairs
