"""The command line: `gpubench COMMAND`, parsed (options.py) and dispatched to one function per
command (commands.py). A user's mistake is one line and exit status 2, before any work starts;
Ctrl-C is one line saying what was kept, and exit status 130."""

from __future__ import annotations

import os
import shlex
import sys

from bench.cli.commands import COMMANDS
from bench.cli.options import parser
from bench.plan.knobs import SpecError
from bench.results.store import StoreBusy, StoreError
from bench.run.runner import Interrupted
from pipelines.dataset import DatasetError

INTERRUPTED = 130  # the shell's status for a command ended by Ctrl-C (128 + SIGINT)
BROKEN_PIPE = 141  # and for one whose reader went away (128 + SIGPIPE)


def main(argv: list[str] | None = None) -> int:
    """The `gpubench` entry point: one command, its failures turned into a one-line message and exit status."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already printed
        return e.code or 0
    typed = sys.argv[1:] if argv is None else argv
    args.typed = shlex.join(["gpubench", *map(str, typed)])  # the command sweep.json records (run_options)
    try:
        return COMMANDS[args.command](args)
    except (SpecError, DatasetError, StoreBusy, StoreError) as e:
        print(f"gpubench: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"gpubench: {e}", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:  # the reader stopped reading (`gpubench knobs | head`): nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    except KeyboardInterrupt:
        resume = "the epochs finished are kept (last.keras, log.csv): `gpubench resume` goes on from them"
        kept = {"train": resume, "resume": resume}.get(args.command, "nothing was left running")
        print(f"gpubench: interrupted; {kept}", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
