"""The command line: parse arguments, make one call to the API (supsup_cli.api.model), render, and map
errors to exit codes. The top layer, with the benchmark: it may import every layer, and nothing
below imports it (tests/test_layers.py)."""

import os
import sys


def main() -> None:
    """The `supsup` console script. Ctrl-C while the engine is still being imported exits cleanly too."""
    from supsup_cli.cli import exit_codes, interrupts

    interrupts.install()  # before the heavy imports: a Ctrl-C swallowed in there is still seen later
    try:
        from supsup_cli.cli.app import run

        code = run(sys.argv[1:])
    except KeyboardInterrupt:
        sys.stderr.write("supsup: error: interrupted\n")
        code = exit_codes.INTERRUPTED
    if code == exit_codes.INTERRUPTED:
        # CPython kills itself with SIGINT at exit when a KeyboardInterrupt ever passed through an
        # exec() of a string (dataclasses and typing run many while torch is imported), which would
        # replace our documented exit code; everything that must reach the disk is already there.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_codes.INTERRUPTED)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        from supsup_cli.cli import output

        output.detach_closed_stdout()
        code = exit_codes.CLOSED_PIPE
    sys.exit(code)
