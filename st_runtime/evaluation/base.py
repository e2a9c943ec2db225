"""What every st-runtime evaluator shares with sentence-transformers' ``BaseEvaluator``."""

from __future__ import annotations

import csv
import os
from typing import Any


class BaseEvaluator:
    """``evaluator(model)`` returns a dict of metrics; ``primary_metric`` names the one to select models by.

    Metric names, their order and the ``name`` prefix follow sentence-transformers, so dashboards and
    scripts written for ST's evaluators read these results unchanged.
    """

    def __init__(self) -> None:
        self.greater_is_better = True
        self.primary_metric: str | None = None

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        raise NotImplementedError

    def prefix_name_to_metrics(self, metrics: dict[str, Any], name: str) -> dict[str, Any]:
        """Plain floats; keys (and ``primary_metric``) prefixed with ``name + '_'`` when a name is given."""

        def maybe_to_float(value: Any) -> Any:
            try:
                return float(value)
            except ValueError:
                return value

        if not name:
            return {key: maybe_to_float(value) for key, value in metrics.items()}
        metrics = {f"{name}_{key}": maybe_to_float(value) for key, value in metrics.items()}
        if self.primary_metric is not None and not self.primary_metric.startswith(name + "_"):
            self.primary_metric = f"{name}_{self.primary_metric}"
        return metrics

    @staticmethod
    def append_csv(output_path: str | None, file_name: str, headers: list[str], row: list[Any]) -> None:
        """Append ``row`` to ``output_path/file_name`` (writing ``headers`` first for a new file), as ST does."""
        if output_path is None:
            return
        os.makedirs(output_path, exist_ok=True)
        path = os.path.join(output_path, file_name)
        exists = os.path.isfile(path)
        with open(path, newline="", mode="a" if exists else "w", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            if not exists:
                writer.writerow(headers)
            writer.writerow(row)

    @property
    def description(self) -> str:
        return type(self).__name__.replace("Evaluator", "")

    def get_config_dict(self) -> dict[str, Any]:
        return {}


def epoch_text(epoch: int, steps: int) -> str:
    if epoch == -1:
        return ""
    return f" after epoch {epoch}" if steps == -1 else f" in epoch {epoch} after {steps} steps"
