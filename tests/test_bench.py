"""The benchmark harness end to end on a tiny model, in seconds: JSON, Markdown table and chart."""

import json


def test_harness_end_to_end(export_bundle, tmp_path):
    from st_runtime.bench.harness import run_benchmark

    bundle = export_bundle("bert-mean", ("onnx-int8-dynamic",))
    results = run_benchmark(bundle, tmp_path, n_queries=8, n_passages=8, batch_sizes="1,4", repeats=1)
    assert set(results["systems"]) == {"torch", "torch-bf16", "variant:onnx", "variant:onnx-int8-dynamic"}
    # bf16 torch is the reference row a user gets with one argument: close to fp32, not equal
    bf16 = results["systems"]["torch-bf16"]["parity"]
    assert 0 < bf16["max_abs"] and bf16["mean_cosine"] > 0.99
    # the batches each side really ran (both sort by length and pad each batch to its longest row)
    torch_batches = results["systems"]["torch"]["batches"]["passages"]["4"]
    ours = results["systems"]["variant:onnx"]["batches"]["passages"]["4"]
    assert torch_batches["count"] == ours["count"] == 2 and torch_batches["rows_max"] == 4
    assert ours["rows_max"] == 4 and 0 < ours["padded_tokens"] <= torch_batches["padded_tokens"]
    machine = results["machine"]
    assert machine["cpu"] and machine["threads"] >= 1 and isinstance(machine["flags"], list) and "bf16_units" in machine
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
    assert "| variant:onnx |" in table and "x)" in table and "Batches actually run at batch_size=4" in table
    assert (tmp_path / "throughput_vs_accuracy.png").stat().st_size > 1000


def test_gpu_check_dry_run_on_cpu(export_bundle, model_path, tmp_path):
    """The GPU check's parity path, run on the CPU provider: fp32 within 1e-5 of torch, fp16 close."""
    import numpy as np
    from sentence_transformers import SentenceTransformer as TorchST
    from st_runtime.bench.gpu_check import main

    from st_runtime import corpus

    reference = TorchST(str(model_path("bert-mean")), device="cpu").encode(corpus.parity_texts(200), batch_size=32)
    np.save(tmp_path / "ref.npy", reference)
    bundle = export_bundle("bert-mean", ("onnx-fp16",))
    assert main([str(bundle), "--reference", str(tmp_path / "ref.npy"), "--out", str(tmp_path), "--device", "cpu"]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["variants"]["onnx"]["max_abs"] <= 1e-5
    assert report["variants"]["onnx-fp16"]["mean_cosine"] >= 0.9999
    assert report["variants"]["onnx-fp16"]["top10_overlap"] >= 0.9


def test_gpu_check_without_cuda_reports_the_users_error(export_bundle, tmp_path):
    import onnxruntime
    import pytest
    from st_runtime.bench.gpu_check import main

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has the CUDA provider")
    assert main([str(export_bundle("bert-mean")), "--out", str(tmp_path)]) == 0
    assert "st-runtime[gpu]" in json.loads((tmp_path / "gpu_check.json").read_text())["cuda"]


import pytest


@pytest.mark.parametrize("name", [
    "multivec-dense",
    pytest.param("splade-router", marks=pytest.mark.slow),  # the same harness path; the sparse parity row
])
def test_harness_new_kinds(export_bundle, tmp_path, name):
    """Sparse and multi-vector bundles: throughput of each variant next to their torch class, parity by kind."""
    from st_runtime.bench.harness import run_benchmark

    bundle = export_bundle(name, ("openvino",))
    results = run_benchmark(bundle, tmp_path, variants=["onnx"], n_queries=8, n_passages=8, batch_sizes="1,4",
                            repeats=1)
    assert set(results["systems"]) == {"torch", "variant:onnx"}, results["systems"]
    for system, figures in results["systems"].items():
        assert "error" not in figures, (system, figures)
        assert figures["throughput"]["passages"]["4"]["median"] > 0
    parity = results["systems"]["variant:onnx"]["parity"]
    assert parity["max_abs"] <= 1e-5 and parity["top10_overlap"] == 1.0
    if name.startswith("multivec"):
        assert parity["same_tokens"]
    else:
        assert parity["active_dims_same"] == 1.0
    assert "| variant:onnx |" in (tmp_path / "results.md").read_text()


def test_batches_are_counted_on_openvinos_many_batch_path_too(export_bundle, monkeypatch):
    """OpenVINO runs a call of several batches through ``run_many``: the harness's batch count must see them."""
    monkeypatch.setenv("ST_RUNTIME_BATCHES_IN_FLIGHT", "on")
    from st_runtime.bench.worker import _load

    from st_runtime import corpus

    call, _, shapes = _load("variant:openvino", str(export_bundle("bert-mean", ("openvino",))), None,
                            "sentence-transformer", "cpu")
    call(corpus.passages(8, seed=77), batch_size=2)
    assert len(shapes) == 4 and all(rows == 2 for rows, _ in shapes)


def test_token_budget_benchmark_runs_every_budget(export_bundle):
    """benchmarks.token_budget: every text set at every budget, and a fresh-process peak RSS per budget."""
    from st_runtime.bench.token_budget import peak_rss, throughput

    bundle = str(export_bundle("bert-mean"))
    rates = throughput(bundle, "onnx", [64, 1024], repeats=1)
    assert set(rates) == {"queries", "passages", "long"}
    assert all(set(per) == {"64", "1024"} and min(v["median"] for v in per.values()) > 0 for per in rates.values())
    assert peak_rss(bundle, "onnx", 64) > 20


@pytest.mark.parametrize("variant", ["onnx", "openvino"])
def test_operator_profile_runs_on_both_backends(export_bundle, variant):
    """benchmarks.profile_ops: graph seconds split by operator class, for ONNX Runtime and OpenVINO sessions."""
    pytest.importorskip("openvino" if variant == "openvino" else "onnxruntime")
    from st_runtime.bench.profile_ops import profile_variant

    from st_runtime import corpus

    texts = {"queries": corpus.queries(8, seed=5), "passages": corpus.passages(4, seed=5)}
    profile = profile_variant(export_bundle("bert-mean", ("openvino",)), variant, texts, batch_size=4)
    for part in profile["sets"].values():
        assert part["graph_s"] > 0 and sum(part["op_classes_s"].values()) > 0, part
