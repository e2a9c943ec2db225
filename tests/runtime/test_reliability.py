"""Concurrency, multi-process pools, memory: one shared model must not mix up, leak or hang."""

import os
import signal
import threading

import numpy as np
import pytest

from st_runtime import SentenceTransformer, corpus
from st_runtime.multiprocess import WorkerDiedError


@pytest.fixture(scope="module")
def tiny(export_bundle):
    return export_bundle("bert-mean")


@pytest.mark.parametrize("variant", ["onnx", "openvino"])
def test_eight_threads_share_one_model(export_bundle, variant):
    model = SentenceTransformer(export_bundle("bert-mean", ("openvino",)), variant=variant)
    jobs = [corpus.queries(20, seed=200 + i) + corpus.passages(5, seed=300 + i) for i in range(8)]
    serial = [model.encode(texts, batch_size=4) for texts in jobs]
    results: dict[int, np.ndarray] = {}
    errors = []

    def work(i: int) -> None:
        try:
            for _ in range(5):
                out = model.encode(jobs[i], batch_size=4)
                if i in results and not np.array_equal(results[i], out):
                    errors.append(f"thread {i} changed between calls")
                results[i] = out
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    for i in range(8):
        assert np.array_equal(results[i], serial[i]), f"thread {i} got other rows"


def test_pool_matches_single_process_and_survives_a_killed_worker(tiny):
    model = SentenceTransformer(tiny)
    texts = corpus.queries(60, seed=7)
    pool = model.start_multi_process_pool(processes=2)
    try:
        pooled = model.encode(texts, pool=pool, chunk_size=10)
        assert np.abs(pooled - model.encode(texts)).max() <= 1e-6
        executor = pool["executor"]
        victim = next(iter(executor._processes.values()))
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(timeout=30)
        with pytest.raises(WorkerDiedError, match="restarted"):
            model.encode(texts, pool=pool, chunk_size=10)
        again = model.encode(texts, pool=pool, chunk_size=10)
        assert np.abs(again - pooled).max() <= 1e-6
    finally:
        model.stop_multi_process_pool(pool)
    with pytest.raises(Exception, match="stopped"):
        model.encode(texts, pool=pool)


@pytest.mark.slow
def test_no_memory_growth_over_10000_calls(tiny):
    psutil = pytest.importorskip("psutil")
    model = SentenceTransformer(tiny)
    texts = corpus.queries(50, seed=9) + corpus.passages(10, seed=10)
    rng = np.random.default_rng(0)

    def calls(n: int) -> None:
        for _ in range(n):
            size = int(rng.integers(1, 6))
            model.encode([texts[j] for j in rng.integers(0, len(texts), size)])

    calls(1000)  # warm-up: arenas and caches reach their working size
    before = psutil.Process().memory_info().rss
    calls(9000)
    growth_mb = (psutil.Process().memory_info().rss - before) / 2**20
    assert growth_mb < 20, f"RSS grew {growth_mb:.1f} MB over 9000 calls"
