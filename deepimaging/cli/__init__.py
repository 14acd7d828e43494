"""The ``deepimaging`` command: argument parsing and printing only, over plain library functions.

Every sub-command parses its arguments, calls one function of the library and
prints what it returned. One module per group of sub-commands: :mod:`.study`
(``demo``, ``study``, ``status``: a study folder) and :mod:`.project` (``new-project``,
``run``, ``report``: a class project); :mod:`._shared` holds the executor options and
the parsing and printing both use.

==============  ===============================================
``demo``        :func:`deepimaging.project.run_demo`
``study``       :func:`deepimaging.study.run_study` (``--point K``: :func:`deepimaging.study.run_point_number`)
``new-project`` :func:`deepimaging.project.new_project`
``run``         :func:`deepimaging.project.run_project`
``report``      :func:`deepimaging.project.report_project`
``status``      :func:`deepimaging.study.study_status`
==============  ===============================================

A user's mistake (a bad value, a missing file, Ctrl-C) ends in one line on
stderr and a non-zero exit status, never in a Python traceback.
"""

from __future__ import annotations

import argparse
import sys

from .project import _add_project
from .study import _add_demo, _add_status, _add_study

# Errors that a user's input causes (bad values, missing or unreadable files, a full disk): one line each.
# Anything else is a bug in deepimaging, and its traceback is what a bug report needs.
USER_ERRORS = (ValueError, TypeError, OverflowError, OSError)


def build_parser() -> argparse.ArgumentParser:
    """The ``deepimaging`` argument parser with all its sub-commands."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="deepimaging",
        description="Physical layers in front of CNNs: run the worked study, sweep a layer, run a class project.",
    )
    parser.add_argument("--version", action="version", version=f"deepimaging {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(subparsers)
    _add_study(subparsers)
    _add_project(subparsers)
    _add_status(subparsers)
    return parser


def main(argv=None) -> int:
    """Run the command; return its exit status (0 success, 2 a user error, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        from ..train import keep_freed_memory

        keep_freed_memory()  # Linux: reuse the activations' memory between batches (faster training)
        return args.run(args) or 0
    except KeyboardInterrupt:
        # Ctrl-C is a user's choice, not a crash; finished points and files are kept (they are atomic).
        print(f"deepimaging {args.command}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        # Bad input from the user: one clear line, not a stack trace from deep inside.
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"deepimaging {args.command}: error: {message}", file=sys.stderr)
        return 2
