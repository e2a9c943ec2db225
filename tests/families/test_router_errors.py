"""A Router model with several transformer routes refuses, before any tracing, what it cannot have: reduced-precision
variants, static shapes and text-in graphs (each route would need its own gate); nothing is written."""

import pytest

from st_runtime.errors import ExportError


@pytest.mark.parametrize("kwargs, match", [
    ({"variants": ("onnx-int8-dynamic",)}, r"variants \['onnx-int8-dynamic'\]"),
    ({"variants": ("openvino", "openvino-fp16")}, r"variants \['openvino-fp16'\]"),
    ({"static_shapes": "1x16"}, "--static-shapes"),
    ({"with_tokenizer": ["onnx"]}, "--with-tokenizer"),
])
def test_refused_before_tracing(model_path, tmp_path, kwargs, match):
    from st_runtime.export.export import export_model

    with pytest.raises(ExportError, match=f"several transformer routes.*{match}.*--variants openvino"):
        export_model(str(model_path("router-dense")), tmp_path / "b", **kwargs)
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob(".b*"))


def test_multi_vector_router_is_refused_by_name():
    pytest.importorskip("torch")
    from st_runtime.errors import UnsupportedModelError
    from st_runtime.export.multi_vector import _check

    router = type("Router", (), {})()
    with pytest.raises(UnsupportedModelError, match="MultiVectorEncoder Routers .* not supported"):
        _check([router])
