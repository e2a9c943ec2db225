"""The measured matrix-multiply ceiling of this CPU: fp32, bf16 and int8 GFLOP/s (GOP/s) at this process's threads.

``python -m st_runtime.bench.gemm_peak [--out FILE.json]``. Shapes: square 2048 and MiniLM's FFN
(4096 tokens x 384 @ 384 x 1536, a batch of 32 x 128 tokens). fp32 runs through numpy's BLAS and torch; bf16
through torch (oneDNN), which uses AVX512-BF16 / AMX where the CPU has them and converts to fp32 otherwise;
int8 through ONNX Runtime's MatMulInteger (MLAS: VNNI / AMX-INT8 kernels where present, AVX2 otherwise).
Each figure is the best of several timed runs after a warm-up: a ceiling, not a typical speed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from st_runtime.hardware import cpu_flags, cpu_name, usable_cpus

SHAPES = {"square-2048": (2048, 2048, 2048), "minilm-ffn": (4096, 384, 1536)}


def _best(fn, flops: float, seconds: float = 1.0) -> float:
    """Giga-operations per second of ``fn``: best run within about ``seconds`` after a warm-up."""
    start = time.perf_counter()
    fn()
    warm = time.perf_counter() - start
    if warm > seconds:  # very slow (bf16 emulated without bf16 units): one run is the figure
        return flops / warm / 1e9
    best, spent = float("inf"), 0.0
    while spent < seconds:
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
    return flops / best / 1e9


def numpy_fp32(m: int, k: int, n: int) -> float:
    a, b = np.random.rand(m, k).astype(np.float32), np.random.rand(k, n).astype(np.float32)
    return _best(lambda: a @ b, 2.0 * m * k * n)


def torch_gemm(m: int, k: int, n: int, dtype: str, threads: int) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    kind = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a, b = torch.rand(m, k, dtype=kind), torch.rand(k, n, dtype=kind)
    with torch.inference_mode():
        return _best(lambda: torch.mm(a, b), 2.0 * m * k * n)


def ort_int8(m: int, k: int, n: int, threads: int) -> float | None:
    """MatMulInteger (uint8 activations x int8 weights, int32 accumulation), weights as a constant."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    weights = np.random.randint(-127, 128, size=(k, n), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "w", "a_zero"], ["y"])], "int8_gemm",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [m, n])],
        initializer=[numpy_helper.from_array(weights, "w"), numpy_helper.from_array(np.array(128, np.uint8), "a_zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    a = np.random.randint(0, 256, size=(m, k), dtype=np.uint8)
    return _best(lambda: session.run(None, {"a": a}), 2.0 * m * k * n)


def measure(threads: int | None = None) -> dict:
    """Every figure this machine can give, with the CPU's model, flags and threads."""
    threads = threads or usable_cpus()
    flags = cpu_flags()
    results: dict = {
        "cpu": cpu_name(), "threads": threads,
        "flags": sorted(f for f in flags if f.startswith(("avx", "amx", "fma")) or "vnni" in f or "bf16" in f),
        "bf16_units": bool(flags & {"avx512_bf16", "amx_bf16"}),
        "int8_units": sorted(flags & {"avx512_vnni", "avx_vnni", "amx_int8"}) or ["none (AVX2 int8: vpmaddubsw)"],
        "gflops": {},
    }
    for name, (m, k, n) in SHAPES.items():
        results["gflops"][name] = {
            "fp32 numpy": numpy_fp32(m, k, n),
            "fp32 torch": torch_gemm(m, k, n, "fp32", threads),
            "bf16 torch": torch_gemm(m, k, n, "bf16", threads),
            "int8 onnxruntime": ort_int8(m, k, n, threads),
        }
    return results


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.2f}"


def as_markdown(results: dict) -> str:
    names = list(next(iter(results["gflops"].values())))
    lines = [f"GEMM ceiling on {results['cpu']}, {results['threads']} threads "
             f"(bf16 units: {'yes' if results['bf16_units'] else 'no'}, int8: {', '.join(results['int8_units'])}):", "",
             "| shape | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for shape, row in results["gflops"].items():
        lines.append(f"| {shape} | " + " | ".join(_fmt(row[n]) for n in names) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m st_runtime.bench.gemm_peak", description=__doc__)
    parser.add_argument("--threads", type=int, default=None, help="default: the CPUs this process may use")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    results = measure(args.threads)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    print(as_markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
