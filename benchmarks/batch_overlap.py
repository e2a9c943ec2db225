"""One batch at a time against several batches in flight, same bundle, same texts, interleaved repeats.

    python -m benchmarks.batch_overlap BUNDLE [--variant openvino] [--repeats 5] [--out benchmarks/results/batch-overlap.json]

It compares ``encode`` batch by batch (every thread on one batch) with ``encode`` through the session's
``run_many``: for OpenVINO a THROUGHPUT compilation with one infer request per stream, for ONNX Runtime a one-thread
session of the same graph running one batch per thread.
The two runs alternate, so drift on a shared machine hits both; the JSON keeps every repeat.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from st_runtime import SentenceTransformer, corpus
from st_runtime.hardware import cpu_name, usable_cpus


class _OneAtATime:
    """The session without ``run_many``: the engine then runs one batch after the other."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.input_names, self.output_names, self.description = inner.input_names, inner.output_names, inner.description

    def run(self, feeds, outputs=None):
        return self.inner.run(feeds, outputs)


def _rate(model, texts: list[str], batch_size: int) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = model.encode(texts, batch_size=batch_size)
    return len(texts) / (time.perf_counter() - start), out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle")
    parser.add_argument("--variant", default="openvino")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--passages", type=int, default=320, help="passages of 60-120 words")
    parser.add_argument("--queries", type=int, default=1000, help="queries of 5-15 words")
    parser.add_argument("--out", default="benchmarks/results/batch-overlap.json")
    args = parser.parse_args(argv)
    model = SentenceTransformer(args.bundle, variant=args.variant)
    session = model._runner.session
    if not hasattr(session, "run_many"):
        raise SystemExit(f"variant {args.variant!r} runs one batch at a time already ({session.description})")
    sets = {"passages": corpus.passages(args.passages, seed=95), "queries": corpus.queries(args.queries, seed=96)}
    rows = []
    for kind, texts in sets.items():
        rates: dict[str, list[float]] = {"one batch at a time": [], "batches in flight": []}
        outs = {}
        for name in rates:  # warm-up: both compilations, every shape class
            model._runner.session = session if name == "batches in flight" else _OneAtATime(session)
            outs[name] = _rate(model, texts, args.batch_size)[1]
        for _ in range(args.repeats):
            for name in rates:
                model._runner.session = session if name == "batches in flight" else _OneAtATime(session)
                rates[name].append(_rate(model, texts, args.batch_size)[0])
        model._runner.session = session
        diff = float(np.abs(outs["one batch at a time"] - outs["batches in flight"]).max())
        for name, values in rates.items():
            rows.append({"texts": kind, "run": name, "median_per_s": statistics.median(values), "repeats": values,
                         "max_abs_diff": diff})
    result = {"bundle": str(args.bundle), "variant": args.variant, "backend": session.description, "cpu": cpu_name(),
              "cpus": usable_cpus(), "batch_size": args.batch_size, "date": time.strftime("%Y-%m-%d %H:%M"),
              "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"{args.variant} ({session.description}) on {cpu_name()} ({usable_cpus()} CPUs), batch {args.batch_size}")
    for row in rows:
        print(f"  {row['texts']:9s} {row['run']:20s} {row['median_per_s']:8.1f} texts/s (median of "
              f"{len(row['repeats'])}; max abs diff {row['max_abs_diff']:.2g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
