"""One system, one fresh process: load it, time it, write figures and embeddings. Run by the harness only."""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


# The model class of each bundle kind, with the same name in st_runtime and sentence_transformers.
_CLASSES = {"cross-encoder": "CrossEncoder", "sparse-encoder": "SparseEncoder",
            "multi-vector-encoder": "MultiVectorEncoder"}


def _outputs(call, kind: str, sets: dict) -> dict:
    """Each text set's result as arrays the harness compares: dense rows (sparse: densified), or for multi-vector
    the token vectors of all texts one after another plus ``NAME_lengths``."""
    import numpy as np

    out = {}
    for name, texts in sets.items():
        if kind == "sparse-encoder":
            out[name] = np.asarray(call(texts, batch_size=32, convert_to_sparse_tensor=False), dtype=np.float32)
        elif kind == "multi-vector-encoder":
            rows = [np.asarray(r, dtype=np.float32) for r in call(texts, batch_size=32)]
            out[name] = np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)
            out[f"{name}_lengths"] = np.array([len(r) for r in rows], dtype=np.int64)
        else:
            out[name] = np.asarray(call(texts, batch_size=32), dtype=np.float32)
    return out


def _load(system: str, bundle: str, source: str | None, kind: str, device: str):
    """(encode function, threads description, batch shapes list) for 'torch', 'torch-fp16', 'torch-bf16',
    'variant:NAME', 'st:BACKEND[:FILE]'. Every batch the system runs appends its (rows, padded length) to the list."""
    shapes: list[tuple[int, int]] = []
    if system.startswith("variant:"):
        import st_runtime

        cls = getattr(st_runtime, _CLASSES.get(kind, "SentenceTransformer"))
        model = cls(bundle, variant=system.split(":", 1)[1], device=device)
        call = model.predict if kind == "cross-encoder" else model.encode
        session = model._runner.session
        run = session.run

        def recorded(feeds, *args, **kwargs):
            shapes.append(tuple(feeds["input_ids"].shape))
            return run(feeds, *args, **kwargs)

        session.run = recorded
        if hasattr(session, "run_many"):  # OpenVINO's path for calls of several batches
            many = session.run_many

            def recorded_many(feeds, *args, **kwargs):
                def counted():
                    for feed in feeds:
                        shapes.append(tuple(feed["input_ids"].shape))
                        yield feed
                return many(counted(), *args, **kwargs)

            session.run_many = recorded_many
        return call, session.description, shapes
    import torch

    if kind == "cross-encoder":
        from sentence_transformers import CrossEncoder

        model = CrossEncoder(source, device=device)
        call = model.predict
    else:
        import sentence_transformers

        SentenceTransformer = getattr(sentence_transformers, _CLASSES.get(kind, "SentenceTransformer"))
        # 'st:onnx' or 'st:openvino', optionally ':FILE' for one of ST's exported graphs (e.g. its int8 ones).
        backend, _, file_name = (system.split(":", 1)[1] if system.startswith("st:") else "torch").partition(":")
        kwargs = {"backend": backend} if backend != "torch" else {}
        if file_name:
            kwargs["model_kwargs"] = {"file_name": file_name}
        if system == "torch-bf16":  # what a user writes: one argument
            kwargs["model_kwargs"] = {"torch_dtype": torch.bfloat16}
        model = SentenceTransformer(source, device=device, **kwargs)
        call = model.encode
        forward = model.forward

        def recorded_forward(features, *args, **kwargs):
            shapes.append(tuple(features["input_ids"].shape))
            return forward(features, *args, **kwargs)

        model.forward = recorded_forward
    if system == "torch-fp16":
        model.half()
    return call, f"torch {torch.__version__} threads={torch.get_num_threads()}", shapes


def _batches(shapes: list[tuple[int, int]]) -> dict:
    """What a call ran: number of batches, rows per batch (min/max) and padded tokens in all."""
    rows = [r for r, _ in shapes]
    return {"count": len(shapes), "rows_min": min(rows, default=0), "rows_max": max(rows, default=0),
            "padded_tokens": sum(r * w for r, w in shapes), "widths": sorted({w for _, w in shapes})}


def _throughput(call, texts, batch_size: int, repeats: int) -> dict:
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        call(texts, batch_size=batch_size)
        rates.append(len(texts) / (time.perf_counter() - start))
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def _latency(call, texts) -> dict:
    times = []
    for text in texts:
        start = time.perf_counter()
        call([text], batch_size=1)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()

    def pct(p: float) -> float:
        return times[min(len(times) - 1, int(round(p / 100 * (len(times) - 1))))]

    return {"p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--system", required=True)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--source")
    parser.add_argument("--kind", default="sentence-transformer")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--texts", required=True, help="JSON file with queries and passages (or pairs)")
    parser.add_argument("--batch-sizes", default="1,8,32,128")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    data = json.loads(Path(args.texts).read_text())
    call, threads, shapes = _load(args.system, args.bundle, args.source, args.kind, args.device)
    load_s = time.perf_counter() - _T0
    sets = {"pairs": [tuple(p) for p in data["pairs"]]} if args.kind == "cross-encoder" else {
        "queries": data["queries"], "passages": data["passages"]}
    for texts in sets.values():  # warm-up, excluded from timing
        call(texts[:16], batch_size=8)
    result = {"system": args.system, "load_s": load_s, "threads": threads, "throughput": {}, "batches": {}}
    for name, texts in sets.items():
        result["throughput"][name], result["batches"][name] = {}, {}
        for bs in args.batch_sizes.split(","):
            shapes.clear()
            call(texts, batch_size=int(bs))  # untimed: the batches this batch size actually runs
            result["batches"][name][bs] = _batches(shapes)
            result["throughput"][name][bs] = _throughput(call, texts, int(bs), args.repeats)
    first = next(iter(sets.values()))
    result["latency"] = _latency(call, first[: min(len(first), 200)])
    import numpy as np

    outputs = _outputs(call, args.kind, sets)
    np.savez(Path(args.out).with_suffix(".npz"), **outputs)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
