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

def status_mb(field):
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None

def peak_mb():
    # VmHWM belongs to this process image; ru_maxrss keeps the parent's high-water mark across fork + exec.
    value = status_mb("VmHWM")
    return value if value is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def anon_mb():
    # Private memory: what the process allocated itself. RSS (VmHWM) also counts the pages of mapped weight files
    # it has read, which stay shared, clean page cache the kernel can drop; OpenVINO reads every weight page while
    # compiling, so for its variants the two figures differ by about the weights' size.
    return status_mb("RssAnon") or 0.0

import threading
anon_peak = [0.0]
def sample_anon():  # no kernel high-water mark exists for private memory: sample it every 5 ms
    while True:
        anon_peak[0] = max(anon_peak[0], anon_mb())
        time.sleep(0.005)
threading.Thread(target=sample_anon, daemon=True).start()

start = time.perf_counter()
import st_runtime
from st_runtime import corpus
imported = time.perf_counter() - start
root, variant, kind, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
budget = {} if sys.argv[5] == "default" else {"max_batch_tokens": int(sys.argv[5])}
threads = {} if sys.argv[6] == "default" else {"threads": int(sys.argv[6])}
start = time.perf_counter()
cls = getattr(st_runtime, {"cross-encoder": "CrossEncoder", "sparse-encoder": "SparseEncoder",
                           "multi-vector-encoder": "MultiVectorEncoder"}.get(kind, "SentenceTransformer"))
model = cls(root, variant=variant, verify=False, **threads)
loaded = time.perf_counter() - start
after_load = peak_mb()
texts = corpus.passages(4 * batch, seed=4101)
start = time.perf_counter()
if kind == "cross-encoder":
    model.predict([(t.split(".")[0], t) for t in texts], batch_size=batch, **budget)
else:
    model.encode(texts, batch_size=batch, **budget)
encoded = time.perf_counter() - start
peak = peak_mb()
anon_peak[0] = max(anon_peak[0], anon_mb())
print(json.dumps({"import_s": imported, "load_s": loaded, "rss_after_load_mb": after_load,
                  "peak_rss_mb": peak, "peak_private_mb": anon_peak[0], "encode_s": encoded, "texts": len(texts), "batch_size": batch,
                  "max_batch_tokens": budget.get("max_batch_tokens", "default"),
                  "threads": threads.get("threads", "default")}))
"""


def variant_files_mb(root: Path, spec) -> float:
    """MB on disk of the files the variant alone reads (graph and weights; a static variant's every bucket)."""
    from st_runtime.bundle import _own_files

    files = set(_own_files(spec))
    if spec.format == "onnx" and not spec.weights_file:  # while exporting: external data is named when sealed
        files.add(f"{spec.file}.data")
    return sum((Path(root) / rel).stat().st_size for rel in files if (Path(root) / rel).exists()) / 1e6


def variant_footprint(root: str | Path, variant: str, kind: str = "sentence-transformer", batch: int = 32,
                      timeout: float = 600, max_batch_tokens: int | None = None, threads: int | None = None) -> dict:
    """Import time, load time and peak RSS (Linux VmHWM) of loading ``variant`` and encoding 4 batches of
    ``batch`` passages, in a fresh process (nothing else loaded: the figure a user's process starts from), and the
    peak of its private memory (``peak_private_mb``, RssAnon sampled every 5 ms: RSS less the mapped files' pages).
    ``max_batch_tokens`` caps each batch's padded tokens (None: the model's default budget); results do not
    depend on it, peak memory does (the attention buffers grow with the tokens of one graph call). ``threads``
    (None: every usable core) also sets how many batches run at once on ONNX Runtime, each with its buffers."""
    budget = "default" if max_batch_tokens is None else str(int(max_batch_tokens))
    cores = "default" if threads is None else str(int(threads))
    done = subprocess.run([sys.executable, "-c", _PROBE, str(root), variant, kind, str(batch), budget, cores],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"footprint probe of {variant} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def install_footprint(repo: str | Path, workdir: Path, timeout: float = 900) -> dict:
    """A runtime-only install (fresh venv, ``pip install REPO`` without extras): site-packages size and the time
    of ``import st_runtime`` (best of 5 fresh processes). pip, setuptools and wheel themselves are not counted."""
    import shutil
    import time
    import venv

    env_dir = Path(workdir) / "runtime-venv"
    shutil.rmtree(env_dir, ignore_errors=True)
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(repo)], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pip install {repo} failed: {done.stderr[-2000:]}")
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    tooling = ("pip", "setuptools", "wheel", "_distutils_hack", "pkg_resources", "distutils-precedence.pth")
    sizes: dict[str, int] = {}
    for entry in site.iterdir():
        if entry.name.split("-")[0] in tooling or entry.name in tooling:
            continue
        files = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
        sizes[entry.name] = sum(p.stat().st_size for p in files)
    imports = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([str(python), "-c", "import st_runtime"], check=True)
        imports.append(time.perf_counter() - start)
    packages = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True,
                              check=True).stdout.split()
    largest = sorted(sizes.items(), key=lambda kv: -kv[1])[:6]
    return {"site_packages_mb": round(sum(sizes.values()) / 1e6, 1),
            "largest_mb": {name: round(size / 1e6, 1) for name, size in largest},
            "import_s_best_of_5": round(min(imports), 3), "import_s_median": round(sorted(imports)[2], 3),
            "packages": [p for p in packages if not p.lower().startswith(("pip=", "setuptools=", "wheel="))]}


def bundle_footprint(root: str | Path, batch: int = 32, max_batch_tokens: int | None = None,
                     threads: int | None = None) -> dict:
    """Per variant: its own files' MB, whether it passed its gate; load time and peak RSS for those that did."""
    from st_runtime.bundle import Bundle

    bundle = Bundle.open(root, verify=False)
    out = {}
    for name, spec in bundle.manifest.variants.items():
        accurate = name == bundle.manifest.default_variant or (spec.accuracy.get("passed") is True
                                                                and not spec.settings.get("forced"))
        row = {"file_mb": round(variant_files_mb(bundle.root, spec), 1), "accurate": accurate,
               "ndcg10_retention": spec.accuracy.get("ndcg10_retention")}
        if accurate:
            probe = variant_footprint(bundle.root, name, bundle.manifest.kind, batch, max_batch_tokens=max_batch_tokens,
                                      threads=threads)
            row.update({k: round(v, 3) for k, v in probe.items() if isinstance(v, float)})
            row.update(max_batch_tokens=probe["max_batch_tokens"], threads=probe["threads"])
        out[name] = row
    return out


def main(argv=None) -> int:
    import argparse
    import tempfile

    from st_runtime.hardware import cpu_name, usable_cpus

    parser = argparse.ArgumentParser(prog="python -m st_runtime.bench.footprint", description=__doc__)
    parser.add_argument("bundle", nargs="?", help="bundle whose variants to measure")
    parser.add_argument("--install", metavar="REPO", help="also measure a runtime-only install of REPO (a path)")
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--max-batch-tokens", type=int, default=None,
                        help="cap each batch at this many padded tokens while encoding (default: the model's budget)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of the model (default: every usable core; ONNX Runtime runs that many batches at once)")
    args = parser.parse_args(argv)
    result: dict = {"cpu": cpu_name(), "usable_cpus": usable_cpus(), "python": sys.version.split()[0]}
    if args.install:
        with tempfile.TemporaryDirectory() as tmp:
            result["install"] = install_footprint(args.install, Path(tmp))
    if args.bundle:
        result["variants"] = bundle_footprint(args.bundle, max_batch_tokens=args.max_batch_tokens, threads=args.threads)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
