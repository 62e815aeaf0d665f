"""Progress of a benchmark run, as the engine reports it."""

from __future__ import annotations


class Listener:
    """Progress of a run; the CLI draws it, tests ignore it."""

    def plan(self, total_steps: int, total_work: float = 0.0) -> None:
        """The training steps of the whole run and its evaluation work (checkpoint c weighs c * c:
        about c tasks' images, each against c masks), for an estimate of the time left."""

    def start(self, label: str, steps: int, work: float = 0.0) -> None:
        """A unit of work begins: training `steps` steps, or (steps 0) an evaluation weighing `work`."""

    def advance(self, step: int) -> None:
        """`step` steps of the current unit are done."""
