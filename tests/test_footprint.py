"""st_runtime.bench.footprint: per-variant figures from a fresh process, not inherited from the caller."""

import numpy as np
import pytest

pytestmark = pytest.mark.torch


def test_variant_footprint_is_the_child_s_own(export_bundle):
    from st_runtime.bench.footprint import bundle_footprint, variant_footprint

    bundle = export_bundle("bert-mean")
    ballast = np.ones(400_000_000 // 8)  # 400 MB in this process: ru_maxrss would carry it into the child
    figures = variant_footprint(bundle, "onnx")
    assert 20 < figures["peak_rss_mb"] < 390 and figures["load_s"] > 0 and figures["texts"] == 128
    rows = bundle_footprint(bundle)
    assert rows["onnx"]["accurate"] and 0 < rows["onnx"]["file_mb"] < 50 and rows["onnx"]["peak_rss_mb"] > 0
    del ballast


def test_token_budget_reaches_the_child(export_bundle):
    from st_runtime.bench.footprint import variant_footprint

    figures = variant_footprint(export_bundle("bert-mean"), "onnx", max_batch_tokens=64, threads=1)
    assert figures["max_batch_tokens"] == 64 and figures["threads"] == 1
    assert figures["peak_rss_mb"] > 20 and figures["texts"] == 128
    assert variant_footprint(export_bundle("bert-mean"), "onnx")["max_batch_tokens"] == "default"


def test_file_size_counts_external_data_before_the_bundle_is_sealed(tmp_path):
    """While a variant is being exported its external data file is not yet named in the spec: still counted."""
    from st_runtime.bench.footprint import variant_files_mb
    from st_runtime.manifest import VariantSpec

    (tmp_path / "model_x.onnx").write_bytes(b"g" * 1000)
    (tmp_path / "model_x.onnx.data").write_bytes(b"w" * 2_000_000)
    unsealed = VariantSpec(file="model_x.onnx", format="onnx")
    assert variant_files_mb(tmp_path, unsealed) == pytest.approx(2.001)
    sealed = VariantSpec(file="model_x.onnx", format="onnx", weights_file="model_x.onnx.data")
    assert variant_files_mb(tmp_path, sealed) == pytest.approx(2.001)
    assert variant_files_mb(tmp_path, VariantSpec(file="model_x.onnx", format="openvino")) == pytest.approx(0.001)
