"""The benchmark harness end to end on a tiny model, in seconds: JSON, Markdown table and chart."""

import json


def test_harness_end_to_end(export_bundle, tmp_path):
    from benchmarks.harness import run_benchmark

    bundle = export_bundle("bert-mean", ("onnx-int8-dynamic",))
    results = run_benchmark(bundle, tmp_path, n_queries=8, n_passages=8, batch_sizes="1,4", repeats=1)
    assert set(results["systems"]) == {"torch", "variant:onnx", "variant:onnx-int8-dynamic"}
    for system, figures in results["systems"].items():
        assert "error" not in figures, (system, figures)
        assert figures["throughput"]["passages"]["4"]["median"] > 0
        assert {"p50_ms", "p95_ms", "p99_ms"} <= set(figures["latency"])
        assert figures["peak_rss_mb"] > 0 and figures["load_s"] > 0
    assert results["systems"]["variant:onnx"]["parity"]["max_abs"] <= 1e-5
    assert results["machine"]["usable_cpus"] >= 1
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["reference"] == "torch"
    table = (tmp_path / "results.md").read_text()
    assert "| variant:onnx |" in table and "x)" in table
    assert (tmp_path / "throughput_vs_accuracy.png").stat().st_size > 1000
