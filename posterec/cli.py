"""``posterec [--home DIR] [-v] COMMAND``: the command line.

Each command lives in a module of `posterec.commands` that defines ``register(subparsers)``;
modules keep heavy imports (TensorFlow, FAISS) inside their handlers so ``--help`` is instant.
Errors print one line and exit 1 (the traceback too under ``-v``, which may come before or after
the command); usage errors, ``-n`` above `posterec.output.MAX_N` included, exit 2. Output cut
short by a closed pipe (``posterec ... | head``) ends quietly.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import traceback
from pathlib import Path

HOME_ENV = "POSTEREC_HOME"
DEFAULT_HOME = "posterec-home"

# Command modules, in the order their commands appear in --help.
COMMAND_MODULES = [
    "posterec.commands.demo",
    "posterec.commands.data",
    "posterec.commands.model",
    "posterec.commands.tune",
    "posterec.commands.posters",
    "posterec.commands.vision",
    "posterec.commands.index",
    "posterec.commands.serve",
    "posterec.commands.info",
    "posterec.commands.movies",
]


class UsageError(Exception):
    """A command-line usage error found after parsing: exits 2."""


def resolve_home(flag: str | None) -> Path:
    return Path(flag or os.environ.get(HOME_ENV) or DEFAULT_HOME)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posterec",
        description="A multimodal movie recommender: ratings, posters, one index.",
    )
    parser.add_argument("--home", default=None,
                        help=f"where data, posters and models live (default: ${HOME_ENV} or ./{DEFAULT_HOME})")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more, and show tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars (they are off anyway when stderr is not a terminal)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    seen = set()
    for command in sub.choices.values():  # `-v` after the command too: `posterec similar 1 -v`
        if id(command) in seen:
            continue  # an alias of one already done
        seen.add(id(command))
        try:
            command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                 help="log more, and show tracebacks on errors")
        except argparse.ArgumentError:
            pass  # the command has its own -v
        try:
            command.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                                 help="no progress bars")
        except argparse.ArgumentError:
            pass
    parser.commands = sub.choices
    return parser


def _check_counts(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``-n`` above `MAX_N` is a usage error for every command, whatever type its module gave it."""
    from .output import check_count

    n = getattr(args, "n", None)
    if isinstance(n, int) and not isinstance(n, bool):
        try:
            check_count(n)
        except argparse.ArgumentTypeError as exc:
            parser.commands[args.command].error(f"argument -n: {exc}")


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _is_tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def _nothing():
    yield


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_counts(parser, args)
    args.home = resolve_home(args.home)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from .quiet import filtered_stderr, no_progress_bars

    bars_off = getattr(args, "quiet", False) or not _is_tty(sys.stderr)
    try:
        with (filtered_stderr() if not args.verbose else _nothing()), no_progress_bars(bars_off):
            rc = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except BrokenPipeError:  # `posterec ... | head`: the reader has all it wanted
        _quiet_stdout()
        return 141  # 128 + SIGPIPE, as a shell tool killed by the pipe would report
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"posterec: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("posterec: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for a person; the traceback with -v
        if args.verbose:
            traceback.print_exc()
        print(f"posterec: error: {one_line(exc)}", file=sys.stderr)
        return 1
    return int(rc or 0)


def one_line(exc: BaseException) -> str:
    from catalog import PosterecError

    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, PosterecError) else f"{type(exc).__name__}: {text}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
