"""Help lists every value a choice takes (from the engine's own tuples), keeps examples copyable,
and shows no Python type names."""

import re

import pytest

from supsup_cli.core import choices, registry
from supsup_cli.data.datasets import DATASETS

COMMANDS = ["init", "inspect", "size", "hopfield-store", "merge", "learn-task", "infer", "benchmark",
            "data export"]
CHOICES = [
    ("learn-task", tuple(DATASETS) + ("folder:PATH",)), ("learn-task", choices.OPTIMIZERS),
    ("learn-task", choices.DENSITY_BUDGETS), ("learn-task", choices.INITS), ("init", tuple(registry.REGISTRY)),
    ("infer", choices.METHODS), ("infer", choices.OBJECTIVES), ("benchmark", choices.SUITES + ("speed",)),
    ("benchmark", tuple(registry.REGISTRY)), ("benchmark", choices.METHODS), ("benchmark", choices.PROTOCOLS),
    ("benchmark", choices.SCENARIOS), ("merge", choices.ON_DUPLICATE), ("data export", tuple(DATASETS)),
]


def _help(cli, command):
    result = cli(*command.split(), "--help")
    assert result.code == 0
    return " ".join(result.out.split())  # lines as wrapped on an 80-column terminal, joined


@pytest.mark.parametrize(("command", "values"), CHOICES, ids=[f"{c}-{v[0]}" for c, v in CHOICES])
def test_every_choice_is_in_the_help(cli, command, values):
    text = _help(cli, command)
    missing = [v for v in values if v not in text]
    assert not missing, (command, missing)


@pytest.mark.parametrize("command", COMMANDS)
def test_usage_and_examples_read_as_a_shell_user_expects(cli, command):
    raw = cli(*command.split(), "--help").out
    usage = raw.splitlines()[0]
    assert "{" not in usage and "<" not in usage and "list[" not in raw, usage
    examples = [line for line in raw.splitlines() if "Example:" in line]
    assert examples and all(line.strip().startswith("Example: supsup ") for line in examples)
    options = re.findall(r"^\s+(--[a-z-]+)(.*)$", raw, re.M)
    undescribed = [flag for flag, rest in options if not rest.strip() or re.fullmatch(r"<[a-z ]+>", rest.strip())]
    assert not undescribed, (command, undescribed)
