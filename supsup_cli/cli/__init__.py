"""The command line: parse arguments, call one engine function, render, map errors to exit codes."""
