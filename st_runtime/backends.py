"""The one place that decides which inference backend and execution providers run a graph.

A backend takes a dict of numpy arrays and returns a dict of numpy arrays; nothing else in the
package imports onnxruntime or openvino.
"""

from __future__ import annotations

import collections
import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import Iterable, Iterator, Protocol, Sequence

import numpy as np

from .compile_cache import openvino_cache_dir
from .errors import BackendNotInstalledError, BackendUnavailableError, IntegrityError, UnsupportedDeviceError
from .hardware import usable_cpus

logger = logging.getLogger(__name__)

_INSTALL_HINT = {
    "onnx": "pip install onnxruntime  (or onnxruntime-gpu for CUDA: pip install 'st-runtime[gpu]')",
    "openvino": "pip install 'st-runtime[openvino]'",
}


class GraphSession(Protocol):
    """What the encoders need from a backend."""

    input_names: list[str]
    output_names: list[str]
    description: str

    def run(self, feeds: dict[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """The graph's outputs for ``feeds``: only those named in ``outputs`` (all when None)."""
        ...


def is_installed(fmt: str) -> bool:
    """Whether the runtime library for a graph format ('onnx' or 'openvino') is importable."""
    if fmt == "static-embedding":  # numpy only (st_runtime.static_embedding)
        return True
    module = {"onnx": "onnxruntime", "openvino": "openvino"}[fmt]
    return importlib.util.find_spec(module) is not None


def _require(fmt: str):
    if not is_installed(fmt):
        raise BackendNotInstalledError(f"Running a {fmt} graph needs its runtime, which is not installed: {_INSTALL_HINT[fmt]}")
    if fmt == "onnx":
        import onnxruntime

        return onnxruntime
    import openvino

    return openvino


def onnx_providers(device: str | None) -> list[str]:
    """Execution providers for a device string ('cpu', 'cuda', 'cuda:1'), checked against what is installed."""
    kind = device_kind(device)
    ort = _require("onnx")
    available = ort.get_available_providers()
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    if kind == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise BackendNotInstalledError(
                f"device={device!r} needs onnxruntime's CUDAExecutionProvider, but only {available} are installed. "
                "Install the GPU build: pip uninstall onnxruntime && pip install 'st-runtime[gpu]'."
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise UnsupportedDeviceError(f"onnxruntime graphs run on 'cpu' or 'cuda[:N]', not {device!r}.")


def device_kind(device: str | None) -> str:
    """'cpu', 'cuda' or 'gpu' from a device string ('cuda:1' -> 'cuda'); anything else is refused by name."""
    if device is None:
        return "cpu"
    if not isinstance(device, str):
        raise UnsupportedDeviceError(f"device must be a string such as 'cpu' or 'cuda:0', got {device!r}.")
    kind, _, index = device.lower().partition(":")
    if kind not in ("cpu", "cuda", "gpu") or (index and not index.isdigit()):
        raise UnsupportedDeviceError(f"Unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'.")
    return kind


class OnnxRuntimeSession:
    """An onnxruntime InferenceSession behind the narrow backend contract."""

    def __init__(self, path: Path, device: str | None = None, threads: int | None = None) -> None:
        ort = _require("onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or usable_cpus()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.enable_mem_pattern = False  # shapes change every batch: planning buffers for one shape only costs
        providers = onnx_providers(device)
        provider_options = None
        if providers[0] == "CUDAExecutionProvider" and device and ":" in device:
            provider_options = [{"device_id": int(device.split(":")[1])}, {}]
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=providers, provider_options=provider_options
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            message = str(exc)
            if "opset" in message.lower():
                raise BackendUnavailableError(
                    f"{path.name} needs a newer ONNX opset than onnxruntime {ort.__version__} supports ({message}). "
                    "Upgrade onnxruntime or re-export with a lower opset."
                ) from exc
            raise IntegrityError(f"onnxruntime could not load {path.name}: {message}. Re-export the bundle.") from exc
        self.input_names = [i.name for i in self._session.get_inputs()]
        self.output_names = [o.name for o in self._session.get_outputs()]
        self.providers = self._session.get_providers()
        self.description = f"onnxruntime {ort.__version__} {self.providers[0]} threads={options.intra_op_num_threads}"

    def run(self, feeds: dict[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        names = list(outputs) if outputs else self.output_names
        return dict(zip(names, self._session.run(names, feeds)))


_KNOWN_NAMES = ("input_ids", "attention_mask", "token_type_ids", "prompt_length", "sentence_embedding",
                "token_embeddings", "logits", "last_hidden_state")


def _port_name(port, known: tuple[str, ...]) -> str:
    """A port's name as the ONNX graph called it (OpenVINO may attach several tensor names to one port)."""
    names = port.get_names()
    return next((name for name in known if name in names), port.get_any_name())


# "on" / "off" (also 1/0, true/false, yes/no); unset or "auto": on with 4 or more threads. Off, OpenVINO runs
# many-batch calls one batch at a time on the LATENCY compilation and never makes the THROUGHPUT one. Measured on
# 2 cores (AMD EPYC, AVX2; README "Batches in flight"): the THROUGHPUT compilation costs MiniLM ~80 MB private and
# ~230 MB of peak RSS (bench 582 -> 350 MB, 64% -> 40% of torch fp32) and gains 2-6% (MiniLM) and 2-16% (12-layer
# base, passages) in interleaved runs. Below 4 threads memory wins; more cores get more streams from OpenVINO's
# THROUGHPUT hint (not measured here).
BATCHES_IN_FLIGHT_ENV = "ST_RUNTIME_BATCHES_IN_FLIGHT"
MIN_CORES_IN_FLIGHT = 4


def batches_in_flight(threads: int) -> bool:
    """Whether OpenVINO keeps several batches in flight for a session of ``threads`` threads (the switch, else
    ``threads >= MIN_CORES_IN_FLIGHT``)."""
    value = os.environ.get(BATCHES_IN_FLIGHT_ENV, "auto").strip().lower()
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    return threads >= MIN_CORES_IN_FLIGHT


def _weightless_cache(core, device: str, weights: Path) -> dict:
    """Cache settings that keep the weights out of OpenVINO's compiled blobs where this OpenVINO can.

    ``CACHE_MODE=OPTIMIZE_SIZE`` stores the compiled graph and, on a cache hit, reads the weights from
    ``WEIGHTS_PATH``: the bundle's own .bin, whose hash the bundle checks. A full blob would hold a second,
    unchecked copy of every weight in the user cache (87 MB per compilation for MiniLM fp32, 2.25 GB for a 2 GB
    model). Measured on MiniLM (openvino, openvino-int8, openvino-int8-wo): the cache 173 MB -> 49 MB, load time
    and memory unchanged. Weights the plugin transforms (static int8's) still go into the blob."""
    try:
        supported = core.get_property(device, "SUPPORTED_PROPERTIES")
    except RuntimeError:  # a device that cannot say: keep OpenVINO's defaults
        return {}
    if "WEIGHTS_PATH" not in supported or not weights.is_file():
        return {}
    return {"CACHE_MODE": "OPTIMIZE_SIZE", "WEIGHTS_PATH": str(weights)}


class OpenVINOSession:
    """An OpenVINO compiled model behind the narrow backend contract (fp32 kept exact unless told otherwise).

    The IR is compiled from its file, with every output: a call fetches (and copies) only the outputs it names, so
    ``encode`` never copies token embeddings. Compiling from the file, rather than from a model read into this
    process, lets OpenVINO map the weights once and, with ``cache_dir``, find its compiled blob without hashing
    every weight (measured on MiniLM fp32: peak RSS 592 -> 511 MB, load 0.61-0.79 -> 0.52-0.57 s, same private
    memory, same results). The cached blobs hold no weights where OpenVINO can (``_weightless_cache``).
    """

    def __init__(
        self, path: Path, device: str | None = None, threads: int | None = None, precision_hint: str = "f32",
        performance_hint: str = "LATENCY", cache_dir: Path | None = None, weights: Path | None = None,
    ) -> None:
        kind = device_kind(device)
        ov = _require("openvino")
        self._device = "CPU" if kind == "cpu" else device.upper().replace("CUDA", "GPU")
        self._core = ov.Core()
        self._config = {
            "INFERENCE_PRECISION_HINT": precision_hint,
            "PERFORMANCE_HINT": performance_hint,
            "INFERENCE_NUM_THREADS": threads or usable_cpus(),
        }
        self._path = path
        # An IR whose weights sit beside it under its own stem compiles from the file; otherwise (a static-shape
        # bucket sharing one weights file) the model is read first, with its weights named.
        self._model = None
        if weights is not None and Path(weights) != path.with_suffix(".bin"):
            try:
                self._model = self._core.read_model(str(path), str(weights))
            except Exception as exc:  # openvino raises RuntimeError with a long text
                raise IntegrityError(
                    f"OpenVINO could not load {path.name}: {str(exc)[:500]}. Re-export the bundle.") from exc
        if cache_dir is not None:
            self._config["CACHE_DIR"] = str(cache_dir)
            self._config.update(_weightless_cache(self._core, self._device, Path(weights or path.with_suffix(".bin"))))
        self._latency = None
        self._throughput = None  # the THROUGHPUT-hint compilation, made on the first run_many
        self._lock = threading.Lock()
        self._local = threading.local()
        compiled = self._compiled()
        self.input_names = [_port_name(p, _KNOWN_NAMES) for p in compiled.inputs]
        self.output_names = [_port_name(p, _KNOWN_NAMES) for p in compiled.outputs]
        self.description = (f"openvino {ov.__version__} {self._device} precision={precision_hint}"
                            f"{' cached' if cache_dir is not None else ''}")

    def _compiled(self, throughput: bool = False):
        """The LATENCY compilation (made at load), or the THROUGHPUT one (several streams; made on first use)."""
        attr = "_throughput" if throughput else "_latency"
        compiled = getattr(self, attr)
        if compiled is None:
            with self._lock:
                compiled = getattr(self, attr)
                if compiled is None:
                    config = {**self._config, "PERFORMANCE_HINT": "THROUGHPUT"} if throughput else self._config
                    compiled = self._compile(config)
                    setattr(self, attr, compiled)
        return compiled

    def _compile(self, config: dict):
        try:
            return self._core.compile_model(self._model if self._model is not None else str(self._path),
                                            self._device, config)
        except Exception as exc:  # openvino raises RuntimeError with a long text
            raise IntegrityError(
                f"OpenVINO could not compile {self._path.name}: {str(exc)[:500]}. Re-export the bundle.") from exc

    def run_many(self, feeds: Iterable[dict[str, np.ndarray]], outputs: Sequence[str] | None = None
                 ) -> Iterator[dict[str, np.ndarray]]:
        """``run`` for each feed dict, in order, with several batches in flight.

        For calls of many batches (a large ``encode``, ``embed``): a THROUGHPUT compilation runs one infer request
        per stream (on 2 cores: 2 streams of 1 thread) instead of every core on one batch at a time, so the serial
        parts of each batch overlap. Each batch is computed by the same compiled graph; where OpenVINO gives one
        stream only, or ``batches_in_flight`` says no (fewer than 4 threads, or the switch), this is ``run`` in a loop.
        """
        requests = []
        if batches_in_flight(int(self._config["INFERENCE_NUM_THREADS"])):
            compiled = self._compiled(throughput=True)
            requests = self._thread_requests(compiled, many=True)
        if len(requests) < 2:
            yield from (self.run(feed, outputs) for feed in feeds)
            return
        names = list(outputs or self.output_names)
        ports = {_port_name(port, _KNOWN_NAMES): port for port in compiled.outputs}
        pending: collections.deque = collections.deque()  # (request, feeds kept alive while it reads them)
        started = 0
        try:
            for feed in feeds:
                if len(pending) == len(requests):  # round robin: the oldest in flight is the request to reuse
                    yield self._collect(pending.popleft()[0], ports, names)
                request = requests[started % len(requests)]
                request.start_async(feed, share_inputs=True)
                pending.append((request, feed))
                started += 1
            while pending:
                yield self._collect(pending.popleft()[0], ports, names)
        finally:
            for request, _ in pending:  # a consumer that stopped early: never free inputs a request still reads
                request.wait()

    @staticmethod
    def _collect(request, ports: dict, names: list[str]) -> dict[str, np.ndarray]:
        request.wait()
        return {name: np.array(request.get_tensor(ports[name]).data, copy=True) for name in names}

    def _thread_requests(self, compiled, many: bool = False):
        """This thread's infer requests for ``compiled`` (one, or one per stream when ``many``)."""
        cache = getattr(self._local, "requests", None)
        if cache is None:
            cache = self._local.requests = {}
        requests = cache.get(id(compiled))
        if requests is None:
            count = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")) if many else 1
            requests = cache[id(compiled)] = [compiled.create_infer_request() for _ in range(max(1, count))]
        return requests

    def compiled_input_shapes(self) -> list:
        """The input partial shapes of the compiled default model (static for a static-shape IR)."""
        return [port.get_partial_shape() for port in self._compiled().inputs]

    def run(self, feeds: dict[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        compiled = self._compiled()
        # One infer request per thread and compiled model: reused across calls, never shared between threads.
        request = self._thread_requests(compiled)[0]
        # share_inputs: no copy of the feeds (this call blocks until the request is done with them);
        # share_outputs: views of the request's buffers, which the next call overwrites, so what is returned is copied.
        result = request.infer(feeds, share_inputs=True, share_outputs=True)
        ports = {_port_name(port, _KNOWN_NAMES): port for port in compiled.outputs}
        return {name: np.array(result[ports[name]], copy=True) for name in (outputs or self.output_names)}


def open_session(path: Path, fmt: str, device: str | None = None, threads: int | None = None, settings: dict | None = None,
                 graph_hashes: list[str] | None = None) -> GraphSession:
    """Create the backend session for a graph file of format 'onnx' or 'openvino'.

    ``graph_hashes`` (the verified sha256 of the graph's files) key OpenVINO's compiled-model cache in the user
    cache folder (see ``compile_cache``); without them nothing is cached.
    """
    if fmt == "static-embedding":
        from .static_embedding import StaticEmbeddingSession

        return StaticEmbeddingSession(path, settings)
    if fmt == "onnx":
        return OnnxRuntimeSession(path, device=device, threads=threads)
    if fmt == "openvino":
        settings = settings or {}
        cache_dir = openvino_cache_dir(graph_hashes, _require("openvino").__version__)
        if settings.get("static_shapes"):
            return _bucketed(path.parent, settings, device, threads, cache_dir)
        return OpenVINOSession(path, device=device, threads=threads, cache_dir=cache_dir,
                               precision_hint=settings.get("inference_precision", "f32"))
    raise BackendUnavailableError(f"Unknown graph format {fmt!r}; this st-runtime runs 'onnx' and 'openvino'.")


def _bucketed(root: Path, settings: dict, device: str | None, threads: int | None, cache_dir: Path | None):
    """One compiled OpenVINO session per static (batch, length) bucket, behind ``shape_buckets.BucketedSession``."""
    from .shape_buckets import Bucket, BucketedSession

    sessions = {}
    for entry in settings["static_shapes"]:
        weights = root / entry["weights_file"] if entry.get("weights_file") else None
        sessions[Bucket(int(entry["batch"]), int(entry["length"]))] = OpenVINOSession(
            root / entry["file"], device=device, threads=threads, cache_dir=cache_dir, weights=weights,
            precision_hint=settings.get("inference_precision", "f32"))
    return BucketedSession(sessions, pad_id=int(settings.get("pad_token_id", 0)),
                           padding_side=settings.get("padding_side", "right"),
                           sequence_outputs=settings.get("sequence_outputs", ()))


def extensions_library() -> str:
    """Path of onnxruntime-extensions' operator library, found without importing the package (whose Python side
    imports transformers and torch when they are installed)."""
    spec = importlib.util.find_spec("onnxruntime_extensions")
    found = [p for p in sorted(Path(spec.origin).parent.glob("_extensions_pydll*"))
             if p.suffix in (".so", ".pyd", ".dylib")] if spec and spec.origin else []
    if not found:
        raise BackendNotInstalledError("ONNX text-in graphs need onnxruntime-extensions' operator library: "
                                       "pip install 'st-runtime[edge]'")
    return str(found[0])


def text_graph_runner(path: Path, hint: str = "f32"):
    """A function running a text-in graph (``.text.onnx`` in ONNX Runtime with onnxruntime-extensions' operators,
    ``.text.xml`` in OpenVINO with openvino-tokenizers'): string arrays in, in input order; first output back."""
    return _onnx_text_runner(path) if path.suffix == ".onnx" else _openvino_text_runner(path, hint)


def _onnx_text_runner(path: Path):
    """ONNX Runtime (CPU) with onnxruntime-extensions' operators: inputs in order, first output back."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BackendNotInstalledError("ONNX text-in graphs need onnxruntime: pip install 'st-runtime[edge]'") from exc
    options = ort.SessionOptions()
    options.register_custom_ops_library(extensions_library())
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda arrays: session.run(None, dict(zip(names, arrays)))[0]


def _openvino_text_runner(path: Path, hint: str):
    try:
        import openvino as ov
        import openvino_tokenizers  # noqa: F401  (registers the tokenizer operators)
    except ImportError as exc:
        raise BackendNotInstalledError(f"OpenVINO text-in graphs need openvino and openvino-tokenizers ({exc.name} "
                                       "is missing): pip install 'st-runtime[edge]'") from exc
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": hint})
    return lambda arrays: compiled([np.array(a.tolist()) for a in arrays])[0]
