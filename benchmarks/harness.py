"""Run every system of a bundle in its own fresh process on the same texts; collect speed, memory and parity."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from st_runtime import corpus
from st_runtime.bundle import Bundle
from st_runtime.hardware import cpu_flags, cpu_name, int8_isa, usable_cpus

from .report import write_chart, write_markdown


def bench_texts(n_queries: int, n_passages: int, corpus_file: str | None = None, kind: str = "sentence-transformer"
                ) -> dict:
    """Queries (5-15 words) and passages (60-120 words), from --corpus or the built-in real-text corpus."""
    if corpus_file:
        lines = [ln.strip() for ln in Path(corpus_file).read_text(encoding="utf-8").splitlines() if ln.strip()]
        queries = [ln for ln in lines if len(ln.split()) <= 20][:n_queries]
        passages = [ln for ln in lines if len(ln.split()) > 20][:n_passages]
    else:
        queries, passages = corpus.queries(n_queries, seed=4001), corpus.passages(n_passages, seed=4002)
    data = {"queries": queries, "passages": passages}
    if kind == "cross-encoder":
        data["pairs"] = [(queries[i % len(queries)], p) for i, p in enumerate(passages)]
    return data


def machine_info() -> dict:
    versions = {}
    for dist in ("st-runtime", "onnxruntime", "openvino", "torch", "sentence-transformers", "transformers", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    flags = cpu_flags()
    return {
        "cpu": cpu_name(), "usable_cpus": usable_cpus(), "os_cpus": os.cpu_count(), "int8_isa": int8_isa(),
        "machine": platform.machine(), "threads": usable_cpus(),  # what st-runtime sizes its pools to; per system: "threads"
        "flags": sorted(f for f in flags if f.startswith(("avx", "amx", "sse4", "fma", "f16c")) or "vnni" in f
                        or "bf16" in f),
        "bf16_units": bool(flags & {"avx512_bf16", "amx_bf16"}), "amx": bool(flags & {"amx_bf16", "amx_int8"}),
        "python": platform.python_version(), "versions": versions,
    }


def _parity(reference: dict, candidate: dict, kind: str) -> dict:
    from st_runtime.export.gates import spearman, topk_overlap  # numpy-only helpers

    if kind == "cross-encoder":
        ref, cand = reference["pairs"].ravel(), candidate["pairs"].ravel()
        return {"max_abs": float(np.abs(ref - cand).max()), "spearman": spearman(ref, cand)}
    if kind == "multi-vector-encoder":
        return _multi_vector_parity(reference, candidate)
    ref = np.concatenate([reference["queries"], reference["passages"]]).astype(np.float64)
    cand = np.concatenate([candidate["queries"], candidate["passages"]]).astype(np.float64)
    unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)  # noqa: E731
    cos = (unit(ref) * unit(cand)).sum(1)
    nq = len(reference["queries"])
    if kind == "sparse-encoder":  # scored by dot product, as SparseEncoder.similarity does by default
        return {"max_abs": float(np.abs(ref - cand).max()), "mean_cosine": float(cos.mean()),
                "active_dims_same": float(np.mean([set(np.nonzero(r)[0]) == set(np.nonzero(c)[0])
                                                   for r, c in zip(ref, cand)])),
                "top10_overlap": topk_overlap(ref[:nq] @ ref[nq:].T, cand[:nq] @ cand[nq:].T)}
    return {
        "max_abs": float(np.abs(ref - cand).max()),
        "mean_cosine": float(cos.mean()),
        "top10_overlap": topk_overlap(unit(ref[:nq]) @ unit(ref[nq:]).T, unit(cand[:nq]) @ unit(cand[nq:]).T),
    }


def _multi_vector_parity(reference: dict, candidate: dict) -> dict:
    """Per-token max abs difference (when both kept the same tokens) and MaxSim top-10 overlap."""
    from st_runtime.export.gates import topk_overlap
    from st_runtime.multi_vector_encoder import maxsim

    def split(data: dict, name: str) -> list[np.ndarray]:
        return np.split(data[name], np.cumsum(data[f"{name}_lengths"])[:-1])

    same_tokens = all(np.array_equal(reference[f"{n}_lengths"], candidate[f"{n}_lengths"])
                      for n in ("queries", "passages"))
    max_abs = max(float(np.abs(reference[n] - candidate[n]).max(initial=0)) for n in ("queries", "passages")) \
        if same_tokens else float("inf")
    scores = [maxsim(split(d, "queries"), split(d, "passages")) for d in (reference, candidate)]
    return {"max_abs": max_abs, "same_tokens": same_tokens, "top10_overlap": topk_overlap(*scores)}


def run_benchmark(bundle_path: str | Path, out_dir: str | Path, *, variants: Sequence[str] | None = None,
                  torch_reference: bool = True, st_backends: Sequence[str] = (), device: str = "cpu",
                  n_queries: int = 256, n_passages: int = 128, batch_sizes: str = "1,8,32,128", repeats: int = 3,
                  corpus_file: str | None = None, source: str | None = None, st_python: str | None = None,
                  torch_bf16: bool = True) -> dict:
    """Benchmark the torch reference (if torch is installed) and each variant; write JSON, Markdown and PNG."""
    bundle = Bundle.open(bundle_path)
    manifest = bundle.manifest
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = source or manifest.source.get("path") or manifest.source.get("model")
    systems = []
    has_torch = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("sentence_transformers")
    if torch_reference and has_torch:
        systems.append("torch")
        if device.startswith("cuda"):
            systems.append("torch-fp16")
        elif torch_bf16 and manifest.kind == "sentence-transformer":
            systems.append("torch-bf16")  # sentence-transformers with model_kwargs={"torch_dtype": torch.bfloat16}
    systems += [f"st:{b}" for b in st_backends]
    systems += [f"variant:{v}" for v in (variants or manifest.variants)]
    texts = bench_texts(n_queries, n_passages, corpus_file, manifest.kind)
    results: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "bundle": str(bundle.root),
        "model": manifest.source.get("model"), "kind": manifest.kind, "device": device, "machine": machine_info(),
        "settings": {"queries": len(texts["queries"]), "passages": len(texts["passages"]), "batch_sizes": batch_sizes,
                     "repeats": repeats}, "systems": {},
    }
    embeddings = {}
    with tempfile.TemporaryDirectory() as tmp:
        texts_file = Path(tmp) / "texts.json"
        texts_file.write_text(json.dumps(texts))
        for system in tqdm(systems, desc="benchmark", unit="system"):
            out = Path(tmp) / (re.sub(r"[^A-Za-z0-9._-]", "_", system) + ".json")
            python = st_python if system.startswith("st:") and st_python else sys.executable
            cmd = [python, "-m", "st_runtime.bench.worker", "--system", system, "--bundle", str(bundle.root),
                   "--source", str(source), "--kind", manifest.kind, "--device", device, "--texts", str(texts_file),
                   "--batch-sizes", batch_sizes, "--repeats", str(repeats), "--out", str(out)]
            started = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
            if proc.returncode != 0:
                results["systems"][system] = {"error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
                tqdm.write(f"{system}: FAILED {results['systems'][system]['error']}")
                continue
            figures = json.loads(out.read_text())
            figures["wall_s"] = time.perf_counter() - started
            if system.startswith("variant:"):
                spec = manifest.variants[system.split(":", 1)[1]]
                figures["file_mb"] = sum(manifest.files.get(f, {}).get("size", 0)
                                         for f in (spec.file, spec.weights_file) if f) / 1e6
                figures["precision"] = spec.precision
                figures["format"] = spec.format
            results["systems"][system] = figures
            with np.load(out.with_suffix(".npz")) as data:
                embeddings[system] = {k: data[k] for k in data.files}
            tqdm.write(f"{system}: done in {figures['wall_s']:.0f} s")
    reference = "torch" if "torch" in embeddings else None
    if reference:
        for system, emb in embeddings.items():
            results["systems"][system]["parity"] = _parity(embeddings[reference], emb, manifest.kind)
    results["reference"] = reference
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    write_markdown(results, out_dir / "results.md")
    write_chart(results, out_dir / "throughput_vs_accuracy.png")
    return results
