"""``--max-drop``: openvino-int8 through ``nncf.quantize_with_accuracy_control`` on a task metric.

NNCF quantizes, scores the fp32 IR and the int8 IR with our validation function, and while the relative drop is over
``max_drop`` reverts the quantized operations that change the outputs most back to fp32, re-scoring after each step.
The validation function scores the labelled task the user gave (``--eval-ir`` / ``--eval-sts``: NDCG@10 / Spearman)
or, without one, the built-in retrieval task of the *selection* split, as retention against torch fp32 (the lowest
retention when there are several tasks). The variant is then gated as usual on the gate split, which neither
calibration nor this search saw. What NNCF did is recorded under the variant's ``settings.accuracy_control``.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from st_runtime.errors import InputValidationError

from .tasks import Task, task_texts

VARIANTS = ("openvino-int8",)


def check_max_drop(max_drop: float | None, variants: Sequence[str], kind: str = "sentence-transformer") -> None:
    """Refuse a ``max_drop`` outside (0, 1), one given with variants other than openvino-int8, or for a model kind
    without a task to control on."""
    if max_drop is None:
        return
    if isinstance(max_drop, bool) or not isinstance(max_drop, (int, float)) or not math.isfinite(max_drop) \
            or not 0 < max_drop < 1:
        raise InputValidationError(
            f"--max-drop must be a fraction strictly between 0 and 1 (the relative loss of the task metric NNCF may "
            f"accept, e.g. 0.005 for 0.5 %), got {max_drop!r}.")
    others = [v for v in variants if v not in VARIANTS]
    if others or not variants:
        raise InputValidationError(
            f"--max-drop runs NNCF's accuracy control, which only builds openvino-int8; got --variants "
            f"{','.join(variants) or '(none)'}. Use --variants openvino-int8 --max-drop {max_drop:g}, and add the "
            "other variants in a separate `st-runtime quantize BUNDLE --variants ...` call.")
    if kind != "sentence-transformer":
        raise InputValidationError(
            f"--max-drop controls a SentenceTransformer's retrieval / STS metric; a {kind} has no such task here. "
            "Export it without --max-drop (the fp32 fallback still applies).")


class _CompiledSession:
    """An NNCF-compiled OpenVINO model behind the backend contract (``st_runtime.backends.GraphSession``)."""

    def __init__(self, compiled: Any) -> None:
        from st_runtime.backends import _KNOWN_NAMES, _port_name

        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self.input_names = [_port_name(p, _KNOWN_NAMES) for p in compiled.inputs]
        self._ports = {_port_name(p, _KNOWN_NAMES): p for p in compiled.outputs}
        self.output_names = list(self._ports)
        self.description = "openvino (compiled by nncf's accuracy control)"

    def run(self, feeds: dict[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        result = self._request.infer(feeds)
        return {name: np.array(result[self._ports[name]], copy=True) for name in (outputs or self.output_names)}


@contextmanager
def _restorer_reports() -> Iterator[list]:
    """The reports of NNCF's accuracy restorer during the block (which operations it reverted): NNCF logs them but
    does not return them, so its report printer is wrapped for the duration of the call."""
    try:
        from nncf.quantization.algorithms.accuracy_control.algorithm import QuantizationAccuracyRestorer
    except ImportError:  # another NNCF layout: the count is then recorded as unknown
        yield []
        return
    original = QuantizationAccuracyRestorer.__dict__.get("_print_report")
    reports: list = []
    if not isinstance(original, staticmethod):
        yield reports
        return

    def capture(report, *args, **kwargs):
        reports.append(report)
        return original.__func__(report, *args, **kwargs)

    QuantizationAccuracyRestorer._print_report = staticmethod(capture)
    try:
        yield reports
    finally:
        QuantizationAccuracyRestorer._print_report = original


@dataclass
class AccuracyControl:
    """``max_drop`` and the tasks (torch fp32 reference set) NNCF's validation function scores."""

    max_drop: float
    tasks: list[Task]
    data: str  # where the tasks come from, for the manifest
    scores: list[float] = field(default_factory=list)  # every full validation, in NNCF's order

    @property
    def texts(self) -> list[str]:
        return list(dict.fromkeys(t for task in self.tasks for t in task_texts(task)))

    def metric(self, model: Any) -> float:
        """The lowest primary-metric retention of the tasks for a runtime ``model`` (0 when not finite)."""
        kept = min(task.figures(model)["retention"] for task in self.tasks)
        return float(kept) if math.isfinite(kept) else 0.0

    def validation_fn(self, model_for: Any, n_items: int):
        """NNCF's ``validation_fn(compiled_model, items)``: the metric on the full validation set. On a subset (NNCF
        probes one item to choose its mode) it returns (None, None), which by NNCF's table makes it rank
        operations by how much they change the outputs; only whole-set scores decide what is reverted."""

        def validate(compiled: Any, items: Iterable) -> tuple[float | None, None]:
            if sum(1 for _ in items) < n_items:
                return None, None
            value = self.metric(model_for(compiled))
            self.scores.append(value)
            return value, None

        return validate

    def quantize(self, ctx: Any, model: Any, calibration: Any, common: dict, advanced: Any) -> tuple[Any, dict]:
        """``nncf.quantize_with_accuracy_control`` of the fp32 ``model``; returns the model and what to record."""
        import nncf
        import openvino as ov

        from st_runtime import SentenceTransformer
        from st_runtime.engine import GraphRunner
        from st_runtime.tokenization import TextTokenizer

        tokenizer = TextTokenizer.from_file(ctx.root / ctx.manifest.tokenizer.file, ctx.manifest.tokenizer)

        def model_for(compiled: Any) -> Any:
            return SentenceTransformer.from_parts(GraphRunner(tokenizer, _CompiledSession(compiled)), ctx.manifest)

        inputs_of = GraphRunner(tokenizer, _InputsOnly(ctx.inputs))

        def feed(text: str) -> dict[str, np.ndarray]:  # one text, as NNCF infers items to rank operations
            return inputs_of.feeds(tokenizer([text]), {"prompt_length": np.zeros(1, dtype=np.int64)})

        texts = self.texts
        self.scores.clear()
        with _restorer_reports() as reports:
            quantized = nncf.quantize_with_accuracy_control(
                model, calibration, nncf.Dataset(texts, feed), self.validation_fn(model_for, len(texts)),
                max_drop=self.max_drop, drop_type=nncf.DropType.RELATIVE,
                advanced_quantization_parameters=advanced, **common)
        compiled = ov.Core().compile_model(quantized, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        final = self.metric(model_for(compiled))
        fp32 = self.scores[0] if self.scores else float("nan")
        report = reports[-1] if reports else None
        reverted = [op.node_name for op in report.reverted_operations] if report is not None else []
        record = {
            "max_drop": self.max_drop, "drop_type": "relative",
            "metric": "lowest primary-metric retention vs torch fp32 (IR: NDCG@10, STS: Spearman)",
            "data": self.data, "tasks": [task.name for task in self.tasks], "validation_texts": len(texts),
            "fp32_ir": fp32, "int8_before": self.scores[1] if len(self.scores) > 1 else None, "int8_after": final,
            "drop": (fp32 - final) / fp32 if fp32 > 0 else None,
            "reverted_operations": len(reverted),
            "reverted": reverted,
            "quantized_operations": getattr(report, "num_quantized_operations", None),
            "restorer_ran": report is not None,
        }
        return quantized, record


class _InputsOnly:
    """Just enough of a session for ``GraphRunner.feeds`` to pick the graph's declared inputs."""

    def __init__(self, inputs: Sequence[str]) -> None:
        self.input_names = list(inputs)
