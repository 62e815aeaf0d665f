"""A run's accuracy matrices, per protocol and method: a row per checkpoint, a column per task."""

from __future__ import annotations

from typing import Any

from supsup_cli.benchmark import metrics


class Rows:
    """The accuracy matrices of a run, per protocol and method: a row per checkpoint, a column per task."""

    def __init__(self, protocols: tuple[str, ...], total: int) -> None:
        self.protocols, self.total = protocols, total
        self.matrices: dict[str, dict[str, list]] = {p: {} for p in protocols}
        self.inferred: dict[str, dict[str, list]] = {p: {} for p in protocols}
        self.images: list[int] = []

    def add(self, row: dict[str, Any]) -> None:
        self.images = row["images"]
        for protocol in self.protocols:
            for name, entry in row[protocol].items():
                self.matrices[protocol].setdefault(name, []).append(pad(entry["accuracy"], self.total))
                if entry["task"] is not None:
                    self.inferred[protocol].setdefault(name, []).append(pad(entry["task"], self.total))

    def add_final(self, name: str, accuracy: list[float]) -> None:
        """A method evaluated after the last task only (the rows before stay empty)."""
        checkpoints_before = len(next(iter(self.matrices[self.protocols[0]].values()))) - 1
        for protocol in self.protocols:
            self.matrices[protocol][name] = [[None] * self.total] * checkpoints_before + [pad(accuracy, self.total)]

    def add_baselines(self, matrices: dict[str, list]) -> None:
        """Baselines are evaluated with the task given, in the same way under every protocol."""
        for protocol in self.protocols:
            self.matrices[protocol].update(matrices)

    @property
    def images_total(self) -> int:
        return sum(self.images)

    def by_checkpoint(self, protocol: str) -> dict[str, list[float | None]]:
        return {m: [row_mean(row) for row in matrix] for m, matrix in self.matrices[protocol].items()}

    def summary(self, protocol: str) -> dict[str, dict[str, float | None]]:
        matrices, inferred = self.matrices[protocol], self.inferred[protocol]
        return {
            "avg_accuracy": {m: metrics.average_accuracy(matrix) for m, matrix in matrices.items()},
            "standard_error": {m: metrics.standard_error(matrix[-1], self.images) for m, matrix in matrices.items()},
            "task_inference_accuracy": {m: metrics.average_accuracy(matrix) for m, matrix in inferred.items()},
            "forgetting": {m: metrics.forgetting(matrix) for m, matrix in matrices.items()},
            "backward_transfer": {m: metrics.backward_transfer(matrix) for m, matrix in matrices.items()},
        }



def pad(values: list[float], length: int) -> list[float | None]:
    return list(values) + [None] * (length - len(values))



def row_mean(row: list[float | None]) -> float | None:
    values = [v for v in row if v is not None]
    return sum(values) / len(values) if values else None
