"""Where the time of an ``encode`` goes, per operator: ONNX Runtime's profiler and OpenVINO's performance counters.

``python -m st_runtime.bench.profile_ops BUNDLE [--variants onnx,openvino] [--out FILE.json]`` encodes the
benchmark's queries (5-15 words) and passages (60-120 words) at batch 32 through the bundle's own engine and splits
the wall time into tokenization, the graph (per operator class: matrix multiplies, attention softmax, LayerNorm,
GELU, the rest) and what is left (padding, copies, pooling glue and Python). One run per text set after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from st_runtime import SentenceTransformer
from st_runtime.hardware import cpu_name, usable_cpus

from .harness import bench_texts

CLASSES = (  # (class, substrings of operator types), first match wins
    ("matmul", ("MatMul", "Gemm", "FullyConnected", "Convolution")),
    ("attention (fused)", ("Attention", "ScaledDotProduct", "SDPA")),
    ("softmax", ("Softmax",)),
    ("layernorm", ("LayerNorm", "MVN", "Normalization")),
    ("gelu", ("Gelu", "Erf")),
)


def op_class(op_type: str) -> str:
    return next((name for name, keys in CLASSES if any(k.lower() in op_type.lower() for k in keys)), "other")


class _Timed:
    """Wraps a session: sums the seconds spent in ``run``."""

    def __init__(self, inner) -> None:
        self.inner, self.seconds = inner, 0.0
        self.input_names, self.output_names, self.description = inner.input_names, inner.output_names, inner.description

    def run(self, feeds, outputs=None):
        start = time.perf_counter()
        try:
            return self.inner.run(feeds, outputs)
        finally:
            self.seconds += time.perf_counter() - start


def _onnx_session(path: Path, threads: int, profile_dir: str):
    import onnxruntime as ort

    from st_runtime.backends import OnnxRuntimeSession

    session = OnnxRuntimeSession(path, threads=threads)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_mem_pattern = False
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(profile_dir) / "ort")
    session._session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return session


def _onnx_ops(session) -> dict[str, float]:
    events = json.loads(Path(session._session.end_profiling()).read_text())
    totals: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"] / 1e6
    return dict(totals)


def _openvino_session(path: Path, threads: int):
    from st_runtime.backends import OpenVINOSession

    session = OpenVINOSession(path, threads=threads)
    session._config["PERF_COUNT"] = "YES"
    session._latency = None
    session._compiled()  # recompiled with the counters on
    session.run_many = None  # one batch at a time through the profiled run (the engine checks for run_many)
    session.op_seconds = defaultdict(float)
    run = session.run

    def profiled(feeds, outputs=None):
        result = run(feeds, outputs)
        for request in (r for requests in session._local.requests.values() for r in requests):
            for info in request.profiling_info:
                if info.status.name == "EXECUTED":
                    session.op_seconds[info.node_type] += info.real_time.total_seconds()
            # the counters hold the last inference only: read them after every call
        return result

    session.run = profiled
    return session


def profile_variant(bundle: str | Path, variant: str, texts: dict, batch_size: int = 32, threads: int | None = None
                    ) -> dict:
    """Seconds per part for each text set: tokenize, graph per operator class (and per operator type), other."""
    threads = threads or usable_cpus()
    model = SentenceTransformer(bundle, variant=variant, threads=threads)
    spec = model.bundle.manifest.variants[model.variant]
    graph = model.bundle.path_of(spec.file)
    out: dict = {"variant": model.variant, "format": spec.format, "threads": threads, "sets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("queries", "passages"):
            items = texts[name]
            raw = _onnx_session(graph, threads, tmp) if spec.format == "onnx" else _openvino_session(graph, threads)
            timed = _Timed(raw)
            model._runner.session = timed
            model.encode(items[:batch_size], batch_size=batch_size)  # warm-up (shapes, first-call allocation)
            if spec.format == "onnx":
                _onnx_ops(raw)
                raw = _onnx_session(graph, threads, tmp)
                timed = model._runner.session = _Timed(raw)
            else:
                raw.op_seconds.clear()
            timed.seconds = 0.0
            start = time.perf_counter()
            model.tokenizer.encode(items)
            tokenize = time.perf_counter() - start
            start = time.perf_counter()
            model.encode(items, batch_size=batch_size)
            total = time.perf_counter() - start
            ops = _onnx_ops(raw) if spec.format == "onnx" else dict(raw.op_seconds)
            classes: dict[str, float] = defaultdict(float)
            for op, seconds in ops.items():
                classes[op_class(op)] += seconds
            out["sets"][name] = {
                "texts": len(items), "total_s": total, "tokenize_s": tokenize, "graph_s": timed.seconds,
                "other_s": max(0.0, total - tokenize - timed.seconds), "op_classes_s": dict(classes),
                "op_types_s": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
            }
    return out


def as_markdown(profiles: list[dict]) -> str:
    lines = ["| variant | set | total s | tokenize | graph | " + " | ".join(c for c, _ in CLASSES) +
             " | other ops | outside graph |", "|---|---|---|" + "---|" * (len(CLASSES) + 4)]
    for prof in profiles:
        for name, part in prof["sets"].items():
            total = part["total_s"]
            ops_total = sum(part["op_classes_s"].values()) or 1.0
            graph_share = part["graph_s"] / total

            def pct(x: float) -> str:
                return f"{100 * x:.0f}%"

            row = [prof["variant"], name, f"{total:.2f}", pct(part["tokenize_s"] / total), pct(graph_share)]
            row += [pct(graph_share * part["op_classes_s"].get(c, 0.0) / ops_total) for c, _ in CLASSES]
            row += [pct(graph_share * part["op_classes_s"].get("other", 0.0) / ops_total), pct(part["other_s"] / total)]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m st_runtime.bench.profile_ops", description=__doc__)
    parser.add_argument("bundle")
    parser.add_argument("--variants", default="onnx,openvino")
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--passages", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", help="write the profile as JSON here")
    args = parser.parse_args(argv)
    texts = bench_texts(args.queries, args.passages)
    model = SentenceTransformer(args.bundle)
    variants = [v for v in args.variants.split(",") if v in model.bundle.manifest.variants]
    profiles = [profile_variant(args.bundle, v, texts, args.batch_size, args.threads) for v in variants]
    result = {"cpu": cpu_name(), "date": time.strftime("%Y-%m-%d"), "batch_size": args.batch_size, "profiles": profiles}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"Per-operator profile on {result['cpu']} (share of wall time of one encode call, batch {args.batch_size}):\n")
    print(as_markdown(profiles))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
