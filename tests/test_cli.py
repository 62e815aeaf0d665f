"""The command line as a contract: help with examples, --version, one-line errors, CI wiring."""

import re

import pytest

from supsup_cli import __version__
from supsup_cli.cli.app import app
from tests.conftest import REPO

COMMANDS = sorted(info.name for info in app.registered_commands) + ["data export"]


def test_version(cli):
    result = cli("--version")
    assert result.code == 0 and result.out.strip() == f"supsup {__version__}"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_is_documented_with_an_example(cli, name):
    result = cli(*name.split(), "--help")
    assert result.code == 0
    assert "Example" in result.out and f"supsup {name}" in result.out


def test_unknown_option_is_one_line_usage_error(cli):
    result = cli("inspect", "--bogus")
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1 and "--bogus" in result.err


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"```\n(python3 -m venv .*?)\n```", readme)
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in (REPO / ".ci" / "run").read_text()
