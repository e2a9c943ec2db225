"""external_data.gather: the per-tensor files torch writes past 2 GiB become one aligned <graph>.data, bytes intact."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from st_runtime.export.external_data import ALIGN, data_files, gather, is_external  # noqa: E402


def _graph(rng: np.random.Generator) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    w1 = rng.standard_normal((64, 48)).astype(np.float32)
    w2 = rng.standard_normal((48, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("MatMul", ["h", "w2"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 8])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), w1, w2


def test_gather_streams_tensor_files_into_one_aligned_data_file(tmp_path):
    rng = np.random.default_rng(0)
    model, w1, w2 = _graph(rng)
    embedded = model.SerializeToString()  # save_model below rewrites ``model`` in place
    spill = tmp_path / "spill"
    spill.mkdir()
    # as torch writes a >2 GiB graph: one file per tensor, named after it, next to the graph
    onnx.save_model(model, str(spill / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=False,
                    size_threshold=0)
    assert {p.name for p in spill.iterdir()} == {"model.onnx", "w1", "w2"}

    assert gather(spill / "model.onnx", tmp_path / "model.onnx")
    assert {p.name for p in spill.iterdir()} == {"model.onnx"}  # tensor files removed as they were copied
    assert data_files(tmp_path / "model.onnx") == {"model.onnx.data"} and is_external(tmp_path / "model.onnx")
    loaded = onnx.load(str(tmp_path / "model.onnx"), load_external_data=False)
    offsets = [int(e.value) for t in loaded.graph.initializer for e in t.external_data if e.key == "offset"]
    assert offsets and all(o % ALIGN == 0 for o in offsets)

    x = rng.standard_normal((3, 64)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, {"x": x})[0],
                                  ort.InferenceSession(embedded,
                                                       providers=["CPUExecutionProvider"]).run(None, {"x": x})[0])
    full = onnx.load(str(tmp_path / "model.onnx"))
    np.testing.assert_array_equal(numpy_helper.to_array(full.graph.initializer[0]), w1)
    np.testing.assert_array_equal(numpy_helper.to_array(full.graph.initializer[1]), w2)


def test_gather_leaves_an_embedded_graph_alone(tmp_path):
    model, _, _ = _graph(np.random.default_rng(1))
    onnx.save_model(model, str(tmp_path / "src.onnx"))
    assert not gather(tmp_path / "src.onnx", tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists() and not is_external(tmp_path / "src.onnx")


def test_weightless_trace_matches_the_ordinary_one(tmp_path, model_path):
    """Traced without weights and given them by ``weightless.attach`` (the path past 2 GiB), the graph holds every
    weight externally, no Transpose of a weight is left, and it computes what the ordinary trace computes."""
    from sentence_transformers import SentenceTransformer as TorchST

    from st_runtime import corpus
    from st_runtime.export.bundle_steps import example_inputs
    from st_runtime.export.graph import EMBEDDING_OUTPUTS, EmbeddingGraph, eager_attention, export_onnx

    import torch

    original = torch._C._jit_pass_onnx_graph_shape_type_inference
    st = TorchST(str(model_path("bert-mean")), device="cpu")
    example = example_inputs(st, ["A short text.", "A somewhat longer example sentence for tracing the graph."])
    module = EmbeddingGraph(st, list(example), False)
    (tmp_path / "plain").mkdir()
    (tmp_path / "big").mkdir()
    with eager_attention(module):
        export_onnx(module, example, EMBEDDING_OUTPUTS, tmp_path / "plain" / "model.onnx", "bert", weightless=False)
        export_onnx(module, example, EMBEDDING_OUTPUTS, tmp_path / "big" / "model.onnx", "bert", weightless=True)
    assert torch._C._jit_pass_onnx_graph_shape_type_inference is original  # the trace's patch is undone
    assert {p.name for p in (tmp_path / "big").iterdir()} == {"model.onnx", "model.onnx.data"}
    graph = onnx.load(str(tmp_path / "big" / "model.onnx"), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    assert all(i.data_location == TensorProto.EXTERNAL for i in graph.initializer) and len(initializers) > 10
    assert not [n for n in graph.node if n.op_type == "Transpose" and n.input[0] in initializers]
    assert [i.name for i in graph.input] == list(example)

    texts = corpus.passages(6, seed=7) + ["x"]
    feeds = {k: v.numpy() for k, v in example_inputs(st, texts).items()}
    plain, big = (ort.InferenceSession(str(tmp_path / d / "model.onnx"), providers=["CPUExecutionProvider"])
                  for d in ("plain", "big"))
    for a, b in zip(plain.run(None, feeds), big.run(None, feeds)):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
