"""The values each choice-taking option accepts, shared by the engine that checks them and the
help that lists them (this module imports nothing heavy: help must not wait for torch)."""

METHODS = ("one-shot", "binary", "exhaustive")
OBJECTIVES = ("entropy", "g")
SUITES = ("permuted-mnist", "rotated-mnist", "split-mnist", "split-cifar100")
PROTOCOLS = ("per-image", "paper")
OPTIMIZERS = ("rmsprop", "adam", "sgd")
DENSITY_BUDGETS = ("uniform", "erk", "er")
INITS = ("kaiming", "mean")
SCENARIOS = ("gnu", "nns")
ON_DUPLICATE = ("refuse", "rename", "skip")


def listed(values: tuple[str, ...]) -> str:
    """'a, b or c'."""
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"
