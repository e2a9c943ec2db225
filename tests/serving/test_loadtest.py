"""benchmarks.loadtest --spawn: starts `st-runtime serve` on a free local port, loads it, stops it; no errors."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

from st_runtime.bench import loadtest  # noqa: E402


def test_loadtest_spawn_embeddings(export_bundle, tmp_path, capsys):
    out = tmp_path / "load.json"
    code = loadtest.main(["--spawn", str(export_bundle("bert-mean")), "--duration", "5", "--concurrency", "4",
                          "--texts-per-request", "2", "--json", str(out)])
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert code == 0, printed
    assert result["errors"] == 0 and result["requests"] > 0 and result["path"] == "/v1/embeddings"
    assert result["model"] == "bert-mean" and result["p50_ms"] <= result["p99_ms"]
    for word in ("req/s", "texts/s", "p50", "p95", "p99", "0 errors"):
        assert word in printed


def test_loadtest_spawn_rerank(export_bundle, capsys):
    code = loadtest.main(["--spawn", str(export_bundle("ce-bert")), "--duration", "1.5", "--concurrency", "2",
                          "--texts-per-request", "4"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "/rerank" in printed and "0 errors" in printed


def test_loadtest_compare(export_bundle, tmp_path, capsys):
    out = tmp_path / "compare.json"
    code = loadtest.main(["--spawn", str(export_bundle("bert-mean")), "--compare", "--duration", "1",
                          "--json", str(out)])
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert code == 0, printed
    assert result["throughput"]["concurrency"] == 8 and result["throughput"]["texts_per_request"] == 8
    assert result["latency"]["concurrency"] == 1 and result["latency"]["texts_per_request"] == 1
    assert result["throughput_share"] > 0 and result["in_process_batch1"]["p50_ms"] > 0
    assert result["latency"]["server_handler_ms"] >= result["latency"]["server_inference_ms"] > 0
    paced = result["in_process_batch1_paced"]
    assert paced["p50_ms"] > 0 and paced["gap_ms"] >= 0 and paced["calls"] > 0
    assert "% of texts/s" in printed and "p50 overhead" in printed and "idle before each call" in printed
