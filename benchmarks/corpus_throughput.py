"""Corpus-embedding throughput: local `embed_file` vs the Ray job with 1 and 2 workers, same file, same bundle.

    python -m benchmarks.corpus_throughput BUNDLE [--texts 3000] [--out benchmarks/results/corpus-throughput.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from st_runtime import SentenceTransformer, corpus
from st_runtime.corpus_embed import embed_file
from st_runtime.hardware import cpu_name, usable_cpus


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("bundle")
    parser.add_argument("--texts", type=int, default=3000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--out", default="benchmarks/results/corpus-throughput.json")
    args = parser.parse_args(argv)
    texts = corpus.queries(args.texts // 2, seed=91) + corpus.passages(args.texts - args.texts // 2, seed=92)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "corpus.txt"
        source.write_text("\n".join(texts) + "\n")
        model = SentenceTransformer(args.bundle)
        start = time.perf_counter()
        embed_file(model, source, Path(tmp) / "local.parquet", chunk_size=1024, progress=False)
        rows.append({"run": "local", "texts_per_s": len(texts) / (time.perf_counter() - start)})
        import ray

        from st_runtime.corpus_embed.ray_job import embed_file_ray

        ray.init(num_cpus=usable_cpus(), include_dashboard=False, log_to_driver=False)
        try:
            for workers in (int(w) for w in args.workers.split(",")):
                start = time.perf_counter()
                embed_file_ray(args.bundle, source, Path(tmp) / f"ray{workers}.parquet", workers=workers,
                               rows_per_batch=1024)
                rows.append({"run": f"ray, {workers} worker(s)", "texts_per_s": len(texts) / (time.perf_counter() - start)})
        finally:
            ray.shutdown()
    result = {"bundle": str(args.bundle), "texts": len(texts), "cpu": cpu_name(), "cpus": usable_cpus(),
              "date": time.strftime("%Y-%m-%d"), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"{len(texts)} texts (half queries, half passages) on {cpu_name()} ({usable_cpus()} CPUs)")
    for row in rows:
        print(f"  {row['run']:20s} {row['texts_per_s']:8.1f} texts/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
