"""How the exporter traces: eager attention for right-padded models, the model's own attention left untouched."""

import pytest

pytestmark = pytest.mark.torch


def _op_types(path):
    import onnx

    return {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}


def test_right_padded_models_trace_eager_attention_and_keep_their_own(export_bundle, model_path):
    from sentence_transformers import SentenceTransformer as TorchST

    from st_runtime.export.graph import eager_attention

    model = TorchST(str(model_path("bert-mean")), device="cpu")
    config = model[0].auto_model.config
    before = config._attn_implementation
    assert before != "eager"  # transformers' default (sdpa), else this test shows nothing
    with eager_attention(model):
        assert config._attn_implementation == "eager"
    assert config._attn_implementation == before
    # SDPA traces with an IsNaN guard for fully masked rows; the eager graph has none and fuses in ORT.
    assert "IsNaN" not in _op_types(export_bundle("bert-mean") / "model.onnx")


def test_left_padded_models_keep_their_attention(export_bundle):
    # Their pad rows are part of token_embeddings, and those rows differ between attention implementations.
    assert "IsNaN" in _op_types(export_bundle("qwen3-lasttoken") / "model.onnx")
