#!/usr/bin/env python3
"""Stage 1 of the UALM recipes: convert one corpus split to a data directory.

    python -m espnet2.bin.ualm_prepare_corpus <corpus> --out_dir data/<name> [...]

The options of each corpus are made from its prepare function's keyword-only
arguments (type hints and docstring ``Args:``), so they cannot drift apart
from the Python API; ``<corpus> --help`` lists them.
"""

import argparse
import collections.abc
import inspect
import logging
import re
import sys
import typing
from typing import Any, Dict, List, Optional

from espnet2.ualm.cli import setup_logging
from espnet2.ualm.data.corpora import CORPORA, CorpusError, PrepareFn, prepare_corpus
from espnet2.utils.types import str2bool

_ARG_LINE = re.compile(r"^(\s*)(\w+): (.*)$")


def _arg_docs(doc: Optional[str]) -> Dict[str, str]:
    """Help text per argument from a Google-style ``Args:`` section."""
    docs: Dict[str, str] = {}
    lines = inspect.cleandoc(doc or "").splitlines()
    if "Args:" not in lines:
        return docs
    indent, name = None, None
    for line in lines[lines.index("Args:") + 1 :]:
        if not line.strip():
            break
        match = _ARG_LINE.match(line)
        if match and (indent is None or len(match.group(1)) == indent):
            indent, name = len(match.group(1)), match.group(2)
            docs[name] = match.group(3)
        elif name is not None:
            docs[name] += " " + line.strip()
    return docs


def _option_kwargs(hint: Any, default: Any) -> Dict[str, Any]:
    """``add_argument`` keywords for one type hint (str, int, float, bool,
    Optional[...], Literal[...] and sequences of str)."""
    kwargs: Dict[str, Any] = {}
    if default is inspect.Parameter.empty:
        kwargs["required"] = True
    else:
        kwargs["default"] = list(default) if isinstance(default, tuple) else default
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Union and len(args) == 1:
        hint = args[0]  # Optional[X]: None stays the default
        args = list(typing.get_args(hint))
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        kwargs.update(choices=args, type=type(args[0]))
    elif origin in (list, tuple, collections.abc.Sequence):
        kwargs.update(nargs="+", type=str)
    elif hint is bool:
        kwargs["type"] = str2bool
    else:
        kwargs["type"] = hint
    return kwargs


def add_corpus_options(parser: argparse.ArgumentParser, prepare: PrepareFn) -> None:
    """Adds ``--<name>`` for each keyword-only argument of ``prepare``."""
    hints = typing.get_type_hints(prepare)
    docs = _arg_docs(prepare.__doc__)
    for name, param in inspect.signature(prepare).parameters.items():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        kwargs = _option_kwargs(hints[name], param.default)
        parser.add_argument(f"--{name}", help=docs.get(name, ""), **kwargs)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Convert a corpus split into a Kaldi-style data directory",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--out_dir", required=True, help="Output data directory, e.g. data/<name>"
    )
    common.add_argument(
        "--log_level",
        type=lambda x: x.upper(),
        default="INFO",
        choices=("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET"),
        help="The verbose level of logging",
    )
    sub = parser.add_subparsers(dest="corpus", required=True, metavar="corpus")
    for name, prepare in CORPORA.items():
        summary = inspect.getdoc(sys.modules[prepare.__module__]).splitlines()[0]
        corpus_parser = sub.add_parser(
            name,
            parents=[common],
            help=summary,
            description=summary,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        add_corpus_options(corpus_parser, prepare)
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    args = vars(get_parser().parse_args(cmd))
    corpus, out_dir = args.pop("corpus"), args.pop("out_dir")
    setup_logging(args.pop("log_level"))
    try:
        kept, rejects = prepare_corpus(corpus, out_dir, **args)
    except CorpusError as e:
        logging.error("%s: %s", corpus, e)
        sys.exit(1)
    summary = rejects.summary(kept + len(rejects))
    logging.info("wrote %s and %s/rejected.tsv", out_dir, out_dir)
    print(summary)
    if kept == 0:
        logging.error(
            "%s: no item kept in %s; see %s/rejected.tsv", corpus, out_dir, out_dir
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
