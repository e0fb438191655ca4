"""Command line: parse arguments, build a config, make one API call, map the outcome to an exit code.

Exit codes: 0 success, 1 the gate found a regression, 2 bad input or usage (one line on stderr,
no traceback). `parser` declares the options (from the config fields), `commands` runs them.
Heavy libraries (torch, transformers, faiss) are imported inside the commands, so `--help` is fast.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from .._launch import launch_env
from ..errors import RetrievalFTError
from .commands import COMMANDS, EXIT_BAD_INPUT, EXIT_GATE_FAILED, EXIT_OK
from .parser import build_parser

__all__ = ["EXIT_BAD_INPUT", "EXIT_GATE_FAILED", "EXIT_OK", "build_parser", "main"]


class _LogFormat(logging.Formatter):
    """retrieval-ft's INFO lines read as progress for people and CI logs ("12:03:04 tuning: ..."),
    anything else keeps its level and logger; lines of every process but rank 0 carry their rank."""

    def __init__(self, rank: int) -> None:
        super().__init__(datefmt="%H:%M:%S")
        tag = f" [rank {rank}]" if rank else ""
        self.progress = logging.Formatter(f"%(asctime)s{tag} %(message)s", datefmt="%H:%M:%S")
        self.other = logging.Formatter(f"%(levelname)s{tag} %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        progress = record.levelno == logging.INFO and record.name.split(".")[0] == "retrieval_ft"
        return (self.progress if progress else self.other).format(record)


def _setup_logging(verbose: bool, quiet: bool, command: str, no_progress: bool = False) -> None:
    """retrieval-ft's INFO lines (one per stage, training progress) are shown by default, so a long
    job in CI says what it is doing; other libraries log warnings only, unless --verbose.
    --no-progress silences the progress display (bars, and the periodic lines that stand in for them
    where there is no terminal). As with logging.basicConfig, an application that configured logging
    itself keeps its handlers."""
    rank = launch_env().rank
    ours = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    others = logging.INFO if verbose else logging.WARNING
    if rank and command == "train":
        # under a launcher the other processes of `train` repeat rank 0's work and its warnings about
        # the data, so they log errors only
        ours = others = logging.ERROR
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(_LogFormat(rank))
        root.addHandler(handler)
        root.setLevel(others)
    logging.getLogger("retrieval_ft").setLevel(ours)
    logging.getLogger("retrieval_ft.progress").setLevel(logging.WARNING if no_progress else logging.NOTSET)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    no_progress = False in (getattr(args, "progress", None), getattr(args, "encode_progress", None))
    _setup_logging(args.verbose, args.quiet, args.command, no_progress)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return COMMANDS[args.command](args)
    except RetrievalFTError as exc:
        message = " ".join(str(exc).split())
        print(f"retrieval-ft: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # unreadable input or unwritable output path
        print(f"retrieval-ft: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("retrieval-ft: interrupted", file=sys.stderr)
        return 130
