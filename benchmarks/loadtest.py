"""Load test for `st-runtime serve`: a bounded number of clients for a bounded time; throughput and latency.

    python -m benchmarks.loadtest --url http://127.0.0.1:8080 --model NAME --concurrency 8 --duration 10
    python -m benchmarks.loadtest --spawn bundles/all-MiniLM-L6-v2 --duration 10 --baseline

``--concurrency`` clients each send one request at a time (closed loop) until ``--duration`` seconds have passed;
the last requests finish within ``--timeout``, so a run always ends. Embedding models get ``POST /v1/embeddings``
(base64, as the openai client sends it), cross-encoders ``POST /rerank``; texts are real English sentences from
``st_runtime.corpus``, sent with ``"truncate": true`` (cut at max_seq_length, as in-process ``encode`` does). Prints requests, errors, req/s, texts/s and p50/p95/p99 latency; exits 1 if any request
failed. ``--spawn BUNDLE`` starts ``st-runtime serve`` on a free local port, runs, and stops it (SIGTERM);
``--baseline`` (with ``--spawn``) then measures in-process ``encode`` / ``predict`` texts/s for comparison.
``--client http.client`` (default) runs each client as a thread with a keep-alive ``http.client`` connection;
``--client httpx`` as tasks on one ``httpx.AsyncClient``, whose own Python costs more per request (see README).

``--compare`` (with ``--spawn``) runs the two figures the server's overhead is judged by, then the in-process
baseline after the server stopped (so they never share the CPUs):

- throughput: 8 clients x 8 texts per request, server texts/s as a share of in-process texts/s (batch 32);
- latency: 1 client x 1 text, server p50 minus in-process p50 of ``encode`` on one text;
- CPU per text: the server process's CPU seconds per text (8 x 8 run) against in-process ``encode``'s, which
  other load on a shared machine disturbs much less than wall-clock rates.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def spawned_server(bundle: str, serve_args: list[str] = (), startup_timeout: float = 120.0) -> Iterator[str]:
    """Run ``st-runtime serve BUNDLE`` on 127.0.0.1:<free port>; yield its URL; stop it on exit."""
    with spawned_process(bundle, serve_args, startup_timeout) as (url, _):
        yield url


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (psutil), threads included."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


@contextlib.contextmanager
def spawned_process(bundle: str, serve_args: list[str] = (), startup_timeout: float = 120.0
                    ) -> Iterator[tuple[str, subprocess.Popen]]:
    """``spawned_server`` that also yields the server's process (for its CPU time)."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "st_runtime.cli", "serve", bundle, "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", *serve_args]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

        def log_tail() -> str:
            log.seek(0)
            return log.read().decode("utf-8", "replace")[-3000:]

        try:
            deadline = time.monotonic() + startup_timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited with status {proc.returncode}:\n{log_tail()}")
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not answer /health within {startup_timeout:g} s:\n{log_tail()}")
                time.sleep(0.1)
            yield url, proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _texts(n: int = 512) -> list[str]:
    from st_runtime import corpus

    sentences = [s for s in corpus.sentences() if 20 <= len(s) <= 300]
    return sentences[:n] if len(sentences) >= n else (sentences * (n // max(1, len(sentences)) + 1))[:n]


def resolve_model(url: str, model: str | None, timeout: float = 30.0) -> tuple[str, str]:
    """(model name, kind) from GET /v1/models; ``model`` may be None when the server has only one."""
    import httpx

    listed = httpx.get(f"{url}/v1/models", timeout=timeout).json()["data"]
    by_id = {m["id"]: m for m in listed}
    if model is None:
        if len(by_id) != 1:
            raise SystemExit(f"--model is required: the server has {sorted(by_id)}")
        model = next(iter(by_id))
    if model not in by_id:
        raise SystemExit(f"the server has no model {model!r}; it has {sorted(by_id)}")
    return model, by_id[model].get("kind", "embedding")


CLIENTS = ("http.client", "httpx")


def run_load(url: str, model: str | None = None, *, concurrency: int = 8, duration: float = 10.0,
             texts_per_request: int = 1, timeout: float = 30.0, encoding_format: str = "base64",
             client: str = "http.client") -> dict:
    """Run the load test against a running server and return its figures.

    ``client``: ``http.client`` (default) runs each client as a thread with its own keep-alive
    ``http.client.HTTPConnection``, the least Python per request the standard library offers, so the latency is the
    server's rather than the client's; ``httpx`` runs them as tasks on one ``httpx.AsyncClient`` (on the 2-core machine
    measured it added ~2-3 ms per request of its own, on the cores the server uses)."""
    if client not in CLIENTS:
        raise ValueError(f"client must be one of {CLIENTS}, got {client!r}")
    model, kind = resolve_model(url, model, timeout)
    path, body = _request_maker(model, kind, texts_per_request, encoding_format)
    if client == "httpx":
        latencies, errors, elapsed = asyncio.run(_httpx_load(url, path, body, concurrency, duration, timeout))
    else:
        latencies, errors, elapsed = _threaded_load(url, path, body, concurrency, duration, timeout)
    lat = np.asarray(latencies) * 1000.0
    pct = {f"p{q}_ms": float(np.percentile(lat, q)) if len(lat) else None for q in (50, 95, 99)}
    return {
        "url": url, "path": path, "model": model, "kind": kind, "concurrency": concurrency, "duration_s": duration,
        "texts_per_request": texts_per_request, "client": client, "elapsed_s": elapsed, "requests": len(latencies),
        "errors": sum(errors.values()), "error_kinds": errors, "req_per_s": len(latencies) / elapsed,
        "texts_per_s": len(latencies) * texts_per_request / elapsed, **pct,
        "max_ms": float(lat.max()) if len(lat) else None,
    }


def _request_maker(model: str, kind: str, texts_per_request: int, encoding_format: str):
    """(path, body(i)) of the i-th request: rerank for cross-encoders, /v1/embeddings otherwise."""
    pool = _texts()
    if kind == "rerank":
        def body(i: int) -> dict:
            docs = [pool[(i + k + 1) % len(pool)] for k in range(texts_per_request)]
            return {"model": model, "query": pool[i % len(pool)], "texts": docs, "truncate": True}
        return "/rerank", body

    def body(i: int) -> dict:
        return {"model": model, "encoding_format": encoding_format, "truncate": True,
                "input": [pool[(i + k) % len(pool)] for k in range(texts_per_request)]}
    return "/v1/embeddings", body


def _threaded_load(url, path, body, concurrency, duration, timeout) -> tuple[list[float], dict, float]:
    import http.client
    import itertools
    import threading
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = itertools.count(1)
    lock = threading.Lock()
    headers = {"Content-Type": "application/json"}

    def post(conn, i: int) -> str | None:
        """None when the answer was a 200, else the failure's name; the connection is replaced after an error."""
        conn.request("POST", path, json.dumps(body(i)), headers)
        response = conn.getresponse()
        response.read()
        return None if response.status == 200 else f"HTTP {response.status}"

    def connect():
        return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)

    warm = connect()
    post(warm, 0)  # warm-up (not counted)
    warm.close()
    start = time.perf_counter()
    deadline = start + duration

    def worker() -> None:
        conn = connect()
        try:
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                try:
                    reason = post(conn, next(counter))
                except (OSError, http.client.HTTPException) as exc:
                    reason = type(exc).__name__
                    conn.close()
                    conn = connect()
                with lock:
                    if reason is None:
                        latencies.append(time.perf_counter() - sent)
                    else:
                        errors[reason] = errors.get(reason, 0) + 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + timeout + 10)
    return latencies, errors, time.perf_counter() - start


async def _httpx_load(url, path, body, concurrency, duration, timeout) -> tuple[list[float], dict, float]:
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = iter(range(1, 10**12))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        await client.post(path, json=body(0))  # warm-up (not counted)
        start = time.perf_counter()
        deadline = start + duration

        async def worker() -> None:
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                try:
                    response = await client.post(path, json=body(next(counter)))
                    ok = response.status_code == 200
                    reason = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    ok, reason = False, type(exc).__name__
                if ok:
                    latencies.append(time.perf_counter() - sent)
                else:
                    errors[reason] = errors.get(reason, 0) + 1

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), duration + timeout + 10)
        return latencies, errors, time.perf_counter() - start


def in_process_baseline(bundle: str, seconds: float = 5.0, batch_size: int = 32, model=None) -> dict:
    """Texts/s of in-process encode (or predict) on the same texts, for comparison with the server."""
    from st_runtime.serving.registry import load_model

    model = model if model is not None else load_model(bundle)
    texts = _texts()
    if hasattr(model, "encode"):
        def step(chunk):
            model.encode(chunk, batch_size=batch_size)
    else:
        def step(chunk):
            model.predict([(texts[0], t) for t in chunk], batch_size=batch_size)
    step(texts[:batch_size])  # warm-up
    done, start, i = 0, time.perf_counter(), 0
    cpu = time.process_time()
    while time.perf_counter() - start < seconds:
        chunk = [texts[(i + k) % len(texts)] for k in range(batch_size)]
        step(chunk)
        done += len(chunk)
        i += batch_size
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    return {"texts_per_s": done / elapsed, "batch_size": batch_size, "texts": done, "elapsed_s": elapsed,
            "cpu_ms_per_text": 1000.0 * cpu / max(1, done)}


def in_process_latency(bundle: str, seconds: float = 5.0, model=None, gap_s: float = 0.0) -> dict:
    """p50 / p95 milliseconds of in-process encode (or predict) on one text at a time, on the loadtest's texts.

    ``gap_s``: the CPU idles that long before each call, as it does between a server's requests while the answer
    travels to the client and the next request comes back (0: calls back to back)."""
    from st_runtime.serving.registry import load_model

    model = model if model is not None else load_model(bundle)
    texts = _texts()
    step = (lambda t: model.encode([t])) if hasattr(model, "encode") else (lambda t: model.predict([(texts[0], t)]))
    step(texts[0])
    times, start, i = [], time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        if gap_s:
            time.sleep(gap_s)
        sent = time.perf_counter()
        step(texts[i % len(texts)])
        times.append(time.perf_counter() - sent)
        i += 1
    lat = np.asarray(times) * 1000.0
    return {"p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)), "calls": len(times),
            "gap_ms": 1000.0 * gap_s}


def compare(bundle: str, duration: float, serve_args: list[str] = (), timeout: float = 30.0,
            client: str = "http.client") -> dict:
    """The server's overhead against in-process encode: 8 clients x 8 texts (texts/s) and 1 client x 1 text (p50)."""
    from st_runtime.serving.registry import load_model

    with spawned_process(bundle, list(serve_args)) as (url, proc):
        cpu = process_cpu_seconds(proc.pid)
        throughput = run_load(url, concurrency=8, texts_per_request=8, duration=duration, timeout=timeout,
                              client=client)
        # CPU the server spent per text (warm-up request included): less sensitive to other load than texts/s
        texts = throughput["requests"] * 8 + 8
        throughput["server_cpu_ms_per_text"] = 1000.0 * (process_cpu_seconds(proc.pid) - cpu) / texts
        before = _handler_seconds(url)
        latency = run_load(url, concurrency=1, texts_per_request=1, duration=duration, timeout=timeout, client=client)
        after = _handler_seconds(url)
        requests = max(1.0, after[2] - before[2])
        latency["server_handler_ms"] = 1000.0 * (after[0] - before[0]) / requests
        latency["server_inference_ms"] = 1000.0 * (after[1] - before[1]) / requests
    model = load_model(bundle)
    base_tp = in_process_baseline(bundle, seconds=min(duration, 5.0), model=model)
    base_lat = in_process_latency(bundle, seconds=min(duration, 5.0), model=model)
    # The same calls with the idle time the server's CPU had between two inferences at concurrency 1.
    gap = max(0.0, (latency["p50_ms"] or 0.0) - latency["server_inference_ms"]) / 1000.0
    paced = in_process_latency(bundle, seconds=min(duration, 5.0), model=model, gap_s=gap)
    return {"throughput": throughput, "latency": latency, "in_process": base_tp, "in_process_batch1": base_lat,
            "in_process_batch1_paced": paced, "p50_overhead_vs_paced_ms": (latency["p50_ms"] or float("nan"))
            - paced["p50_ms"],
            "throughput_share": throughput["texts_per_s"] / base_tp["texts_per_s"],
            "cpu_share": base_tp["cpu_ms_per_text"] / throughput["server_cpu_ms_per_text"],
            "p50_overhead_ms": (latency["p50_ms"] or float("nan")) - base_lat["p50_ms"]}


def _handler_seconds(url: str) -> tuple[float, float, float]:
    """(seconds in the embeddings handler, seconds in inference calls, requests) so far, from ``/metrics``."""
    import httpx

    sums = {"handler": 0.0, "inference": 0.0, "count": 0.0}
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith('st_runtime_request_duration_seconds_sum{endpoint="embeddings"'):
            sums["handler"] += float(value)
        elif name.startswith('st_runtime_request_duration_seconds_count{endpoint="embeddings"'):
            sums["count"] += float(value)
        elif name.startswith("st_runtime_inference_duration_seconds_sum{"):
            sums["inference"] += float(value)
    return sums["handler"], sums["inference"], sums["count"]


def format_compare(result: dict) -> str:
    tp, lat = result["throughput"], result["latency"]
    return "\n".join([
        format_report(tp), format_report(lat),
        f"in-process: {result['in_process']['texts_per_s']:.1f} texts/s (batch {result['in_process']['batch_size']}),"
        f" batch-1 p50 {result['in_process_batch1']['p50_ms']:.2f} ms",
        f"server/in-process: {100 * result['throughput_share']:.0f} % of texts/s (8 clients x 8 texts); "
        f"p50 overhead at concurrency 1: {result['p50_overhead_ms']:+.2f} ms",
        f"in-process batch-1 p50 with {result['in_process_batch1_paced']['gap_ms']:.1f} ms idle before each call (the "
        f"server's gap between inferences): {result['in_process_batch1_paced']['p50_ms']:.2f} ms; server p50 overhead "
        f"against it: {result['p50_overhead_vs_paced_ms']:+.2f} ms",
        f"concurrency 1, inside the server: {lat['server_handler_ms']:.2f} ms per request in the handler, of which "
        f"{lat['server_inference_ms']:.2f} ms inference ({lat['server_handler_ms'] - lat['server_inference_ms']:.2f}"
        " ms parsing, tokenizing, queueing, formatting)",
        f"CPU per text: server {tp['server_cpu_ms_per_text']:.2f} ms, in-process {result['in_process']['cpu_ms_per_text']:.2f}"
        f" ms ({100 * result['cpu_share']:.0f} % efficiency; the client's own CPU not counted)",
    ])


def format_report(result: dict, baseline: dict | None = None) -> str:
    def ms(key: str) -> str:
        return "-" if result[key] is None else f"{result[key]:.1f}"

    lines = [
        f"loadtest: POST {result['url']}{result['path']}  model={result['model']}  concurrency={result['concurrency']}"
        f"  duration={result['duration_s']:g}s  texts/request={result['texts_per_request']}",
        f"requests:   {result['requests']} ok, {result['errors']} errors"
        + (f" {result['error_kinds']}" if result["errors"] else ""),
        f"throughput: {result['req_per_s']:.1f} req/s, {result['texts_per_s']:.1f} texts/s",
        f"latency ms: p50 {ms('p50_ms')}  p95 {ms('p95_ms')}  p99 {ms('p99_ms')}  max {ms('max_ms')}",
    ]
    if baseline:
        lines.append(f"in-process: {baseline['texts_per_s']:.1f} texts/s (encode, batch {baseline['batch_size']}, "
                     "same texts, no server)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.loadtest", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="server URL, e.g. http://127.0.0.1:8080 (or use --spawn)")
    p.add_argument("--spawn", metavar="BUNDLE", help="start `st-runtime serve BUNDLE` on a free local port for the run")
    p.add_argument("--serve-args", default="", help="extra `st-runtime serve` options for --spawn, one string")
    p.add_argument("--model", help="model name (default: the server's only model)")
    p.add_argument("--concurrency", type=int, default=8, help="clients, each with one request in flight")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    p.add_argument("--texts-per-request", type=int, default=1, help="inputs (or rerank documents) per request")
    p.add_argument("--encoding-format", choices=("float", "base64"), default="base64")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds")
    p.add_argument("--baseline", action="store_true",
                   help="with --spawn: also time in-process encode (after the server stopped)")
    p.add_argument("--compare", action="store_true",
                   help="with --spawn: 8 clients x 8 texts and 1 client x 1 text against in-process encode")
    p.add_argument("--client", choices=CLIENTS, default="http.client",
                   help="http.client: a thread per client with a keep-alive connection (default, the least client "
                        "overhead); httpx: tasks on one httpx.AsyncClient")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if bool(args.url) == bool(args.spawn):
        raise SystemExit("give exactly one of --url and --spawn BUNDLE")
    if args.concurrency < 1 or args.duration <= 0 or args.texts_per_request < 1:
        raise SystemExit("--concurrency and --texts-per-request must be >= 1, --duration > 0")
    if args.compare:
        if not args.spawn:
            raise SystemExit("--compare needs --spawn BUNDLE")
        result = compare(args.spawn, args.duration, shlex.split(args.serve_args), args.timeout, args.client)
        print(format_compare(result), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        return 1 if result["throughput"]["errors"] or result["latency"]["errors"] else 0
    kwargs = dict(concurrency=args.concurrency, duration=args.duration, texts_per_request=args.texts_per_request,
                  timeout=args.timeout, encoding_format=args.encoding_format, client=args.client)
    if args.spawn:
        with spawned_server(args.spawn, shlex.split(args.serve_args)) as url:
            result = run_load(url, args.model, **kwargs)
    else:
        result = run_load(args.url.rstrip("/"), args.model, **kwargs)
    # After the server stopped, so the two never share the CPUs.
    baseline = None
    if args.baseline and args.spawn:
        baseline = in_process_baseline(args.spawn, seconds=min(args.duration, 5.0))
    if baseline:
        result["in_process"] = baseline
    print(format_report(result, baseline), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 1 if result["errors"] or not result["requests"] else 0


if __name__ == "__main__":
    sys.exit(main())
