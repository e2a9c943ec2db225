"""What tokenizing inside an ONNX text graph costs: the text graph against its own variant's graph fed with ids
tokenized outside it, on the very batches ``encode`` would run (sorted by token length, the token budget applied).

    python -m benchmarks.text_graph_speed BUNDLE [--variant onnx] [--repeats 3] [--out results.json]

Both sessions use the runtime's ONNX Runtime settings (2 threads here, sequential, no memory pattern); each figure
is the median texts/s over the repeats, alternating the two. The CPU model and flags go into the JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _session(path: Path, extensions: bool):
    import onnxruntime as ort

    from st_runtime.backends import extensions_library
    from st_runtime.hardware import usable_cpus

    options = ort.SessionOptions()
    options.intra_op_num_threads = usable_cpus()
    options.inter_op_num_threads = 1
    options.enable_mem_pattern = False
    if extensions:
        options.register_custom_ops_library(extensions_library())
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def measure(bundle: Path, variant: str = "onnx", repeats: int = 3, batch_size: int = 32) -> dict:
    """texts/s of the text graph and of the graph alone (ids from the runtime's tokenizer), queries and passages."""
    from st_runtime import corpus
    from st_runtime.bundle import Bundle
    from st_runtime.config import variant_batch_tokens
    from st_runtime.engine import plan_batches
    from st_runtime.hardware import cpu_flags, cpu_name
    from st_runtime.tokenization import TextTokenizer

    opened = Bundle.open(bundle, verify=False)
    spec = opened.manifest.variants[variant]
    text = spec.settings.get("text_graph")
    if not text or not text["file"].endswith(".onnx"):
        raise SystemExit(f"{bundle}: variant {variant!r} has no ONNX text graph; add one with "
                         f"`st-runtime quantize {bundle} --with-tokenizer {variant}`.")
    tokenizer = TextTokenizer.from_file(opened.root / opened.manifest.tokenizer.file, opened.manifest.tokenizer)
    graph, alone = _session(opened.root / text["file"], True), _session(opened.root / spec.file, False)
    wanted = [i.name for i in alone.get_inputs()]
    budget = variant_batch_tokens(opened.manifest, variant)
    results = {}
    for kind, texts in (("queries", corpus.queries(512, seed=78)), ("passages", corpus.passages(256, seed=77))):
        lengths = [len(ids) for ids, _ in tokenizer.encode(texts)]
        plan = plan_batches(lengths, batch_size, budget)
        strings = [np.array([texts[i] for i in rows], dtype=object) for rows in plan]
        feeds = []
        for rows in plan:
            encoded = tokenizer([texts[i] for i in rows])
            feeds.append({n: encoded.get(n, np.zeros_like(encoded["input_ids"])) for n in wanted})
        runs: dict[str, list[float]] = {"text_graph": [], "graph_alone": []}
        for _ in range(repeats):
            start = time.perf_counter()
            for batch in strings:
                graph.run(None, {"text": batch})
            runs["text_graph"].append(len(texts) / (time.perf_counter() - start))
            start = time.perf_counter()
            for feed in feeds:
                alone.run(["sentence_embedding"], feed)
            runs["graph_alone"].append(len(texts) / (time.perf_counter() - start))
        results[kind] = {name: float(np.median(v)) for name, v in runs.items()} | {
            "runs": runs, "batches": len(plan), "share": float(np.median(runs["text_graph"]) /
                                                              np.median(runs["graph_alone"]))}
    return {"bundle": str(bundle), "variant": variant, "cpu": cpu_name(),
            "cpu_flags": sorted(f for f in cpu_flags() if f.startswith(("avx", "amx", "fma", "sse4", "neon"))), "max_batch_tokens": budget,
            "batch_size": batch_size, "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--variant", default="onnx")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    report = measure(args.bundle, args.variant, args.repeats)
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
