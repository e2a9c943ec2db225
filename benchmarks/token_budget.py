"""How the per-call token budget (``max_batch_tokens``) changes speed and peak memory, same bundle, same texts.

    python -m benchmarks.token_budget BUNDLE [--variants onnx,openvino] [--budgets 512,1024,2048,4096]
        [--repeats 4] [--out benchmarks/results/token-budget.json]

``encode(texts, batch_size=32, max_batch_tokens=B)`` splits each batch of 32 into graph calls of at most B padded
tokens; results do not change (exact variants), only the size of each call. For every variant, one process runs
every budget on the same texts with the budgets interleaved (so drift on a shared machine hits them all):
queries (5-15 words), passages (60-120 words) and long texts (past max_seq_length, truncated). Peak RSS (Linux
VmHWM) needs a fresh process per budget: each encodes the passages and long texts once.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

_RSS_PROBE = r"""
import json, sys
import st_runtime
from st_runtime.bench.token_budget import text_sets
root, variant, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = st_runtime.SentenceTransformer(root, variant=variant, verify=False)
sets = text_sets()
texts = sets["passages"] + sets["long"]
model.encode(texts, batch_size=32, max_batch_tokens=budget)
peak = next(int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"peak_rss_mb": peak}))
"""


def text_sets() -> dict[str, list[str]]:
    """Texts no test or gate uses (own seeds): short queries, passages, and texts longer than most models' limit."""
    from st_runtime import corpus

    return {"queries": corpus.queries(512, seed=5001),
            "passages": corpus.passages(128, seed=5101),
            "long": [" ".join(corpus.passages(4, seed=5200 + i)) for i in range(32)]}


def throughput(bundle: str, variant: str, budgets: list[int], repeats: int) -> dict:
    """Texts/s per text set and budget (best and median of ``repeats``), budgets interleaved in one process."""
    from st_runtime import SentenceTransformer

    model = SentenceTransformer(bundle, variant=variant, verify=False)
    sets = text_sets()
    out: dict = {}
    for name, texts in sets.items():
        for budget in budgets:  # warm-up: every shape each budget will see
            model.encode(texts, batch_size=32, max_batch_tokens=budget)
        rates: dict[int, list[float]] = {b: [] for b in budgets}
        for _ in range(repeats):
            for budget in budgets:
                start = time.perf_counter()
                model.encode(texts, batch_size=32, max_batch_tokens=budget)
                rates[budget].append(len(texts) / (time.perf_counter() - start))
        out[name] = {str(b): {"best": max(r), "median": sorted(r)[len(r) // 2], "all": r} for b, r in rates.items()}
    return out


def peak_rss(bundle: str, variant: str, budget: int) -> float:
    done = subprocess.run([sys.executable, "-c", _RSS_PROBE, bundle, variant, str(budget)], capture_output=True,
                          text=True, timeout=900, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.token_budget", description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("--variants", default="onnx,openvino")
    parser.add_argument("--budgets", default="512,1024,2048,4096")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    from st_runtime.hardware import cpu_name, usable_cpus

    budgets = [int(b) for b in args.budgets.split(",")]
    result: dict = {"bundle": args.bundle, "cpu": cpu_name(), "threads": usable_cpus(), "budgets": budgets,
                    "date": time.strftime("%Y-%m-%d %H:%M"), "variants": {}}
    for variant in args.variants.split(","):
        rates = throughput(args.bundle, variant, budgets, args.repeats)
        rss = {str(b): peak_rss(args.bundle, variant, b) for b in budgets}
        result["variants"][variant] = {"texts_per_s": rates, "peak_rss_mb": rss}
        for name, per_budget in rates.items():
            line = "  ".join(f"{b}: {v['median']:.1f}/s" for b, v in per_budget.items())
            print(f"{variant:16s} {name:9s} {line}")
        print(f"{variant:16s} peak RSS  " + "  ".join(f"{b}: {v:.0f} MB" for b, v in rss.items()))
        if args.out:  # after every variant, so a stopped run keeps what it measured
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
