"""Footprint of a variant, each measured in a fresh process: file size, import and load time, peak RSS encoding.

``variant_footprint`` is what the exporter records for size-oriented variants (openvino-int4); ``python -m
st_runtime.bench.footprint`` adds the runtime-only install (a fresh venv with ``pip install .``, no extras).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_PROBE = r"""
import json, resource, sys, time

def peak_mb():
    # VmHWM belongs to this process image; ru_maxrss keeps the parent's high-water mark across fork + exec.
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

start = time.perf_counter()
import st_runtime
from st_runtime import corpus
imported = time.perf_counter() - start
root, variant, kind, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
start = time.perf_counter()
cls = getattr(st_runtime, {"cross-encoder": "CrossEncoder", "sparse-encoder": "SparseEncoder",
                           "multi-vector-encoder": "MultiVectorEncoder"}.get(kind, "SentenceTransformer"))
model = cls(root, variant=variant, verify=False)
loaded = time.perf_counter() - start
after_load = peak_mb()
texts = corpus.passages(4 * batch, seed=4101)
start = time.perf_counter()
if kind == "cross-encoder":
    model.predict([(t.split(".")[0], t) for t in texts], batch_size=batch)
else:
    model.encode(texts, batch_size=batch)
encoded = time.perf_counter() - start
peak = peak_mb()
print(json.dumps({"import_s": imported, "load_s": loaded, "rss_after_load_mb": after_load,
                  "peak_rss_mb": peak, "encode_s": encoded, "texts": len(texts), "batch_size": batch}))
"""


def variant_files_mb(root: Path, spec) -> float:
    """MB on disk of the files the variant alone reads (graph and weights; a static variant's every bucket)."""
    from st_runtime.bundle import _own_files

    return sum((Path(root) / rel).stat().st_size for rel in _own_files(spec)) / 1e6


def variant_footprint(root: str | Path, variant: str, kind: str = "sentence-transformer", batch: int = 32,
                      timeout: float = 600) -> dict:
    """Import time, load time and peak RSS (Linux VmHWM) of loading ``variant`` and encoding 4 batches of
    ``batch`` passages, in a fresh process (nothing else loaded: the figure a user's process starts from)."""
    done = subprocess.run([sys.executable, "-c", _PROBE, str(root), variant, kind, str(batch)], capture_output=True,
                          text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"footprint probe of {variant} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
