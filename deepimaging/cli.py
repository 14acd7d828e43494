"""The ``deepimaging`` command: a thin shell over :mod:`deepimaging.study` and :mod:`deepimaging.project`.

Each module adds its own sub-commands with ``add_cli(subparsers)``; every
sub-command's parser has a ``run`` default that takes the parsed arguments.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from . import __version__, project, study

    parser = argparse.ArgumentParser(
        prog="deepimaging",
        description="Physical layers in front of CNNs: run the worked study, sweep a layer, run a class project.",
    )
    parser.add_argument("--version", action="version", version=f"deepimaging {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    study.add_cli(subparsers)  # demo, study
    project.add_cli(subparsers)  # new-project, run, report
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .train import keep_freed_memory

    keep_freed_memory()  # Linux: reuse the activations' memory between batches (faster training)
    try:
        return args.run(args) or 0
    except (ValueError, TypeError, FileExistsError, FileNotFoundError, PermissionError) as err:
        # Bad input from the user: one clear line, not a stack trace from deep inside.
        print(f"deepimaging {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
