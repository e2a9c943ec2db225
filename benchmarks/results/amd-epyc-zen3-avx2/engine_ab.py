"""A/B: python ab.py MODE VARIANT  (MODE: old|new|nopad|noout; measurement script for the README figures, not part of the package)."""
import sys, time, resource, statistics
mode, variant = sys.argv[1], sys.argv[2]
import numpy as np
import st_runtime
from st_runtime import corpus
from st_runtime.engine import GraphRunner
if mode in ("old", "nopad"):
    orig_init = GraphRunner.__init__
    def init(self, *a, **k):
        orig_init(self, *a, **k); self.pad_multiple = None
    GraphRunner.__init__ = init
t0 = time.perf_counter()
import os
m = st_runtime.SentenceTransformer("/tmp/speed/minilm", variant=variant, threads=int(os.environ.get("AB_THREADS", "1")))
load = time.perf_counter() - t0
if mode in ("old", "noout"):
    run = m._runner.session.run
    m._runner.session.run = lambda feeds, outputs=None: run(feeds, None)
if mode == "new":
    m._runner.pad_to(8)  # padding is opt-in since this measurement
P = corpus.passages(100, seed=4002); Q = corpus.queries(200, seed=4001)
m.encode(P[:16]); m.encode(Q[:16])
res = {}
for name, texts in (("passages", P), ("queries", Q)):
    rates = []
    for _ in range(2):
        t = time.process_time(); e = m.encode(texts, batch_size=32); rates.append(len(texts) / (time.process_time() - t))
    res[name] = statistics.median(rates)
lat = []
for q in Q[:100]:
    t = time.process_time(); m.encode([q], batch_size=1); lat.append((time.process_time() - t) * 1000)
np.save(f"/tmp/speed/emb_{mode}_{variant}.npy", np.concatenate([m.encode(P), m.encode(Q)]))
print(f"{mode:6s} {variant:9s} load {load:.2f}s cpu-passages/s {res['passages']:.1f} cpu-queries/s {res['queries']:.1f} "
      f"cpu-p50 {statistics.median(lat):.2f}ms rss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.0f}MB")
