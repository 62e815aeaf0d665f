"""The command line: parse arguments, call one engine function, render, map errors to exit codes."""

import sys


def main() -> None:
    """The `supsup` console script. Ctrl-C while the engine is still being imported exits cleanly too."""
    try:
        from supsup_cli.cli.app import run

        code = run(sys.argv[1:])
    except KeyboardInterrupt:
        sys.stderr.write("supsup: error: interrupted\n")
        code = 130
    sys.exit(code)
