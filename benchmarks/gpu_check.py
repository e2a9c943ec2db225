"""GPU check for a device machine: CUDA execution provider, fp32 and fp16 parity and speed on the GPU.

Usage: ``python -m benchmarks.gpu_check BUNDLE [--reference REF.npy] [--out DIR]``. The bundle's fp32 graph
(if present) must match the reference embeddings within 1e-5 on CUDA; fp16 is reported as mean cosine and
top-10 agreement against the same reference. When onnxruntime has no CUDA provider, the check says so and shows
the error st-runtime gives a user who asks for ``device="cuda"``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _gpu_name() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "no nvidia-smi"


def _throughput(model, texts: list[str], batch_size: int) -> float:
    model.encode(texts[:batch_size], batch_size=batch_size)
    start = time.perf_counter()
    model.encode(texts, batch_size=batch_size)
    return len(texts) / (time.perf_counter() - start)


def _top10(reference: np.ndarray, ours: np.ndarray) -> float:
    """Top-10 agreement: the first 100 texts as queries against the other 100, cosine scores."""
    def top(x: np.ndarray) -> np.ndarray:
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        return np.argsort(-(unit[:100] @ unit[100:].T), axis=1)[:, :10]

    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top(reference), top(ours))]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__)
    parser.add_argument("bundle")
    parser.add_argument("--reference", help=".npy of torch fp32 embeddings of corpus.parity_texts(200)")
    parser.add_argument("--out", default=".")
    parser.add_argument("--device", default="cuda", help="cpu runs the same checks without a GPU (a dry run)")
    args = parser.parse_args(argv)

    import onnxruntime as ort

    from st_runtime import BackendUnavailableError, SentenceTransformer, corpus

    report: dict = {"gpu": _gpu_name(), "onnxruntime": ort.__version__, "providers": ort.get_available_providers()}
    print(json.dumps(report, indent=1), flush=True)
    try:
        model = SentenceTransformer(args.bundle, device=args.device, variant=None)
    except BackendUnavailableError as exc:
        report["cuda"] = f"unavailable: {exc}"
        print(report["cuda"])
        Path(args.out, "gpu_check.json").write_text(json.dumps(report, indent=1))
        return 0
    texts = corpus.parity_texts(200)
    reference = np.load(args.reference) if args.reference else None
    results = {}
    for variant in model.bundle.manifest.variants:
        spec = model.bundle.manifest.variants[variant]
        if spec.precision not in ("fp32", "fp16") or spec.format != "onnx":
            continue
        gpu = SentenceTransformer(args.bundle, device=args.device, variant=variant)
        row = {"providers": gpu._runner.session.providers}
        if reference is not None:
            ours = gpu.encode(texts, batch_size=32)
            row["max_abs"] = float(np.abs(ours - reference).max())
            cos = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
            row["mean_cosine"] = float(cos.mean())
            row["top10_overlap"] = _top10(reference, ours)
        passages = corpus.passages(512)
        row["passages_per_s"] = {bs: round(_throughput(gpu, passages, bs), 1) for bs in (32, 128)}
        results[variant] = row
        print(variant, row, flush=True)
    report["variants"] = results
    Path(args.out, "gpu_check.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
