"""Prometheus metrics in the text exposition format (version 0.0.4), written by hand: no extra dependency.

Exposed at ``GET /metrics``:

- ``st_runtime_requests_total{endpoint,status}``: requests answered, by endpoint and HTTP status
- ``st_runtime_request_duration_seconds{endpoint}``: request latency histogram
- ``st_runtime_batch_size{model}``: inputs per inference call (how well dynamic batching merges)
- ``st_runtime_batch_requests{model}``: requests merged into one inference call
- ``st_runtime_inference_duration_seconds{model}``: time of one inference call
- ``st_runtime_inputs_total{model}`` / ``st_runtime_tokens_total{model}``: texts (or pairs) and tokens processed
- ``st_runtime_queue_depth{model}``: requests waiting for their model (gauge)
- ``st_runtime_queue_tokens{model}``: tokens of the requests queued or running on their model (gauge)
- ``st_runtime_requests_in_flight``: requests being handled (gauge)
- ``st_runtime_ready``: 1 once warmed up and not draining (gauge)

Rejections show in ``st_runtime_requests_total`` by status: 429 (overloaded), 401 (no or wrong API key), 413, 503.
"""

from __future__ import annotations

import bisect
import math
import threading
from typing import Callable, Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class _Histogram:
    def __init__(self, buckets: Iterable[float]) -> None:
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * (len(self.bounds) + 1)  # last: above the highest bound
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1


class Metrics:
    """Thread-safe counters and histograms for the server, rendered as Prometheus text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, int], int] = {}
        self._latency: dict[str, _Histogram] = {}
        self._batch_size: dict[str, _Histogram] = {}
        self._batch_requests: dict[str, _Histogram] = {}
        self._inference: dict[str, _Histogram] = {}
        self._inputs: dict[str, int] = {}
        self._tokens: dict[str, int] = {}
        self.in_flight = 0
        self.queue_depth: Callable[[], dict[str, int]] = dict
        self.queue_tokens: Callable[[], dict[str, int]] = dict
        self.ready: Callable[[], bool] = lambda: True

    # ----- recording ------------------------------------------------------------------------------------
    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (endpoint, int(status))
            self._requests[key] = self._requests.get(key, 0) + 1
            self._latency.setdefault(endpoint, _Histogram(LATENCY_BUCKETS)).observe(seconds)

    def observe_batch(self, model: str, inputs: int, requests: int, seconds: float) -> None:
        with self._lock:
            self._batch_size.setdefault(model, _Histogram(BATCH_BUCKETS)).observe(inputs)
            self._batch_requests.setdefault(model, _Histogram(BATCH_BUCKETS)).observe(requests)
            self._inference.setdefault(model, _Histogram(LATENCY_BUCKETS)).observe(seconds)

    def count_inputs(self, model: str, inputs: int, tokens: int) -> None:
        with self._lock:
            self._inputs[model] = self._inputs.get(model, 0) + inputs
            self._tokens[model] = self._tokens.get(model, 0) + tokens

    def request_count(self, endpoint: str, status: int) -> int:
        with self._lock:
            return self._requests.get((endpoint, status), 0)

    # ----- rendering ------------------------------------------------------------------------------------
    def render(self) -> str:
        out: list[str] = []
        with self._lock:
            self._family(out, "st_runtime_requests_total", "counter", "Requests answered, by endpoint and HTTP status.",
                         ("endpoint", "status"), {k: v for k, v in sorted(self._requests.items())})
            self._histograms(out, "st_runtime_request_duration_seconds", "Request latency in seconds.",
                             "endpoint", self._latency)
            self._histograms(out, "st_runtime_batch_size", "Inputs (texts or pairs) per inference call.",
                             "model", self._batch_size)
            self._histograms(out, "st_runtime_batch_requests", "Requests merged into one inference call.",
                             "model", self._batch_requests)
            self._histograms(out, "st_runtime_inference_duration_seconds", "Duration of one inference call.",
                             "model", self._inference)
            self._family(out, "st_runtime_inputs_total", "counter", "Texts (or text pairs) processed.",
                         ("model",), {(k,): v for k, v in sorted(self._inputs.items())})
            self._family(out, "st_runtime_tokens_total", "counter", "Tokens processed (after truncation).",
                         ("model",), {(k,): v for k, v in sorted(self._tokens.items())})
            in_flight = self.in_flight
        depth = self.queue_depth()
        self._family(out, "st_runtime_queue_depth", "gauge", "Requests waiting for their model.",
                     ("model",), {(k,): v for k, v in sorted(depth.items())})
        self._family(out, "st_runtime_queue_tokens", "gauge", "Tokens queued or running, per model.",
                     ("model",), {(k,): v for k, v in sorted(self.queue_tokens().items())})
        self._family(out, "st_runtime_requests_in_flight", "gauge", "Requests being handled.", (), {(): in_flight})
        self._family(out, "st_runtime_ready", "gauge", "1 when warmed up and not draining.", (),
                     {(): int(bool(self.ready()))})
        return "\n".join(out) + "\n"

    @staticmethod
    def _family(out: list[str], name: str, kind: str, help_text: str, label_names: tuple[str, ...],
                samples: dict[tuple, float]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        for values, value in samples.items():
            out.append(f"{name}{_labels(label_names, values)} {_number(value)}")

    @staticmethod
    def _histograms(out: list[str], name: str, help_text: str, label: str, series: dict[str, _Histogram]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} histogram")
        for key in sorted(series):
            hist = series[key]
            cumulative = 0
            for bound, count in zip((*hist.bounds, math.inf), hist.counts):
                cumulative += count
                le = 'le="' + _number(bound) + '"'
                out.append(f"{name}_bucket{_labels((label,), (key,), le)} {cumulative}")
            out.append(f"{name}_sum{_labels((label,), (key,))} {_number(hist.sum)}")
            out.append(f"{name}_count{_labels((label,), (key,))} {hist.count}")
