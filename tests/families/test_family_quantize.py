"""int8 variants of the new kinds are measured against torch with their own gates (slow: builds int8 graphs)."""

import shutil

import pytest

from st_runtime import MultiVectorEncoder, SparseEncoder


@pytest.mark.slow
@pytest.mark.parametrize("name, cls, figures", [
    ("splade-max", SparseEncoder, ("active_overlap", "top10_overlap", "max_abs")),
    ("multivec-dense", MultiVectorEncoder, ("top10_overlap", "max_abs")),
])
def test_int8_gate_figures(name, cls, figures, export_bundle, tmp_path):
    from st_runtime.export.variants import quantize_bundle

    bundle = tmp_path / name
    shutil.copytree(export_bundle(name, ("openvino",)), bundle)
    quantize_bundle(bundle, ["onnx-int8-dynamic"], force=True)
    model = cls(bundle, variant="onnx-int8-dynamic")
    accuracy = model.manifest.variants["onnx-int8-dynamic"].accuracy
    assert all(isinstance(accuracy[k], float) for k in figures), accuracy
    assert set(accuracy["gate"]) <= set(figures)
    assert accuracy["passed"] == all(
        accuracy[k] <= v if k == "max_abs" else accuracy[k] >= v for k, v in accuracy["gate"].items())
    model.encode_query(["does it run?"])
