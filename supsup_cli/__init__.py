"""supsup: Supermasks in Superposition as a command-line tool."""

__version__ = "0.1.0"
